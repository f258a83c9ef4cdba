"""read_page's word boxes on a line model's page (htr.pages.reading.word_ink_boxes): the alignment's
loose columns of each word -> the box of that word's own ink, on ink masks drawn here."""
import cv2
import numpy as np

from htr.pages.reading import word_ink_boxes

# A line cut 120 pixels tall whose line (its box) has rows 30-89 and its x-height, the core, rows 50-69.
FIRST_ROW, END_ROW = 30, 90
WORDS = [(40, 140), (180, 260), (300, 420)]  # each word's columns [left, right)
LOOSE = [[20, 0, 140, 120], [160, 0, 120, 120], [280, 0, 200, 120]]  # the alignment's columns, into the gaps


def drawn_line():
    """The ink of a line of three words, each a block across the core, the first with an ascender."""
    ink = np.zeros((120, 500), np.uint8)
    for left, right in WORDS:
        ink[50:70, left:right] = 1
    cv2.line(ink, (60, 34), (60, 50), 1, 3)  # the first word's ascender, from row 32
    return ink


def test_each_word_gets_the_box_of_its_own_ink():
    boxes = word_ink_boxes(drawn_line().astype(bool), LOOSE, FIRST_ROW, END_ROW)
    assert boxes == [[40, 32, 100, 38], [180, 50, 80, 20], [300, 50, 120, 20]]


def test_a_rule_through_the_cut_is_no_words_ink():
    ink = drawn_line()
    cv2.line(ink, (460, 0), (460, 119), 1, 5)  # a column's rule, in the last word's loose columns
    assert LOOSE[2][0] < 460 < LOOSE[2][0] + LOOSE[2][2]
    boxes = word_ink_boxes(ink.astype(bool), LOOSE, FIRST_ROW, END_ROW)
    assert boxes[2] == [300, 50, 120, 20]


def test_a_dot_above_the_core_is_its_words_and_the_line_aboves_stroke_is_not():
    ink = drawn_line()
    cv2.circle(ink, (200, 42), 3, 1, -1)  # the second word's i-dot, rows 39-45
    cv2.line(ink, (340, 0), (345, 44), 1, 3)  # the line above's descender, down into the line's rows
    boxes = word_ink_boxes(ink.astype(bool), LOOSE, FIRST_ROW, END_ROW)
    assert boxes[1] == [180, 39, 80, 31]
    assert boxes[2] == [300, 50, 120, 20]


def test_a_word_with_no_ink_keeps_its_columns_at_the_lines_height():
    ink = drawn_line()
    ink[:, 300:] = 0
    boxes = word_ink_boxes(ink.astype(bool), LOOSE, FIRST_ROW, END_ROW)
    assert boxes[2] == [280, FIRST_ROW, 200, END_ROW - FIRST_ROW]
