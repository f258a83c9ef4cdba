"""htr.pages.reading.line_cut: the rectangle a found line is read from."""
from htr.pages.reading import FLATTEST_CUT, LINE_MARGIN, line_cut


def test_a_flat_line_is_cut_as_tall_as_the_page_s_lines_around_its_middle():
    """A line whose ascenders and descenders went to its neighbours (its box only its x-height band)
    is still cut tall enough to hold them; a line of the usual height is cut by its margins alone."""
    found = [{"box": [100, 100 * row, 1500, 90]} for row in range(1, 6)] + [{"box": [100, 640, 1500, 40]}]
    left, top, right, bottom = line_cut([100, 640, 1500, 40], found, 2000, 3000)
    assert bottom - top >= FLATTEST_CUT * 90 + 2 * LINE_MARGIN
    assert abs((top + bottom) / 2 - 660) <= 3  # around the box's middle
    usual = line_cut([100, 300, 1500, 90], found, 2000, 3000)
    assert usual[1] < 300 and usual[3] > 390 and usual[3] - usual[1] < 90 + 2 * LINE_MARGIN + 0.3 * 90
    assert line_cut([0, 0, 1500, 40], found, 1400, 3000)[:3] == (0, 0, 1400)  # within the page
