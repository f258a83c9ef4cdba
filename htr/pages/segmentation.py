"""Find the lines and words on a page of handwriting, with OpenCV and NumPy alone (no trained detector).

    from htr.pages.segmentation import find_words, reading_images
    lines = find_words(bgr_image)   # [[Word(box=[x, y, w, h], ink, line_quartiles), ...], ...] in reading order
    tight, band = reading_images(lines[0][0])   # the first word, cut two ways for the recognizer

The method, step by step. Every size is measured on the page itself (its pen width, the median
height of its ink components, each line's x-height), so the same code works on a 120-pixel word
image and on a 12-megapixel photo.

1. Greyscale and background flattening. The paper's brightness is estimated by a grey-level
   closing (htr.preprocess.paper_brightness: a maximum filter several pen widths wide, so it
   erases every stroke, then a box blur), on a copy a quarter the size; dividing the page by it
   turns uneven light, shadows and toned paper into even white, so one threshold fits the whole page.
2. Binarisation: Otsu's threshold on the flattened darkness, never below MIN_INK_CONTRAST, so
   that a page of bare paper and noise has no ink rather than ink made of noise. Specks smaller
   than a dot of the pen are dropped. The rules of ruled paper and forms (straight strokes along
   the lines, longer than any handwritten one) are taken out, but not the writing on them.
3. Skew: the ink is rotated (its coordinates only) by small angles, +-MAX_SKEW degrees; the angle
   whose horizontal projection profile has the most variance (sharpest peaks at the lines, emptiest
   gaps between them) is the page's skew, found coarse-to-fine. Lines and words are found in the
   deskewed coordinates.
4. Lines: a Gaussian blur much wider than tall turns each line's x-height band (dense ink) into a
   ridge, while the thin ascenders and descenders that reach, or touch, the next line fade away.
   The ridge is where the blurred ink is densest in its column (within a letter's height); each
   ridge, joined along the line, is one line's core. Every ink component goes to the line whose core
   holds its ink. A piece in no core (a dot, a comma, the tip of an ascender that binarisation broke
   off) goes to the line of the nearest ink that is in one: the stroke it was part of. A component
   that reaches into two cores (a descender touching the ascender below) is split where the strokes
   meet: each line floods it from its own core, and every pixel goes to the line that reaches it
   first.
5. Words: in each line, ink separated by a horizontal gap wider than WORD_GAP x the line's own
   x-height (twice the height of the band holding the middle half of its ink) starts a new word.
   Gaps are measured in the x-height band (a tail reaching under the next word does not bridge one),
   and each ink component goes whole to one word. Fragments (a dot, a comma, a piece cut off a
   touching letter) join the nearest word.
6. Reading: reading_images shows each word to the recognizer without the ink of the other words
   that reaches into its box (of the neighbouring lines, or a tail from the next word), deskewed,
   in the page's shades of grey on white (with the soft edges of its strokes), cut tight and cut to
   its line's band.

Boxes are in pixels of the input image: the skew only changes the coordinates the lines and words
are found in, never the boxes.
"""
import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from htr.preprocess import paper_brightness, writing_band

MIN_INK_CONTRAST = 0.2  # ink is at least this much darker than the paper around it (fraction of its brightness)
MAX_SKEW = 3.0  # degrees either way the page may be rotated
WORD_GAP = 0.6  # a gap wider than this many x-heights separates two words
RULE_LENGTH = 40  # a straight stroke at least this many pen widths long (and a third of the page) is a rule, not writing


@dataclass
class Word:
    box: list  # [x, y, w, h] in pixels of the input image
    ink: np.ndarray  # float in [0, 1], 0 paper: the word's ink without other words', deskewed, cropped to it
    line_quartiles: tuple  # the rows (in `ink`) above which a quarter and three quarters of its line's ink lie


def flatten(gray):
    """Grey page -> darkness in [0, 1] relative to the paper under it (0 paper, 1 black). The paper is
    the brightest level within a window several pen widths wide (a first guess at the ink, by Otsu's
    threshold on the raw page, gives the pen) and at least an eighth of the page, estimated on a copy
    a quarter the size when the page is large enough."""
    pen = stroke_width(cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)[1] > 0)
    shrink = 4 if min(gray.shape) >= 256 else 1
    window = max(3, round(max(min(gray.shape) / 8, 6 * pen) / shrink)) | 1
    return np.clip(1 - gray.astype(np.float32) / np.maximum(paper_brightness(gray, window, shrink), 1), 0, 1)


def binarize(darkness):
    """Ink mask (bool) from the flattened darkness: Otsu, but never below MIN_INK_CONTRAST."""
    level = np.round(cv2.medianBlur(darkness, 3) * 255).astype(np.uint8)
    otsu, _ = cv2.threshold(level, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return level > max(otsu, MIN_INK_CONTRAST * 255)


def stroke_width(ink):
    """The pen's width in pixels: twice the ink area over its outline length (a long stroke of width w
    has area length*w and outline 2*length)."""
    contours, _ = cv2.findContours(ink.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(contour, True) for contour in contours)
    return max(1.0, 2 * ink.sum() / max(perimeter, 1))


def estimate_skew(xs, ys, bin_size):
    """The angle (degrees) by which the ink points must be rotated to make the lines horizontal."""
    def sharpness(angle):
        rotated = ys * np.cos(np.radians(angle)) - xs * np.sin(np.radians(angle))
        profile = np.bincount(((rotated - rotated.min()) / bin_size).astype(np.int64))
        return float(np.sum(profile.astype(np.float64) ** 2))
    best = max(np.arange(-MAX_SKEW, MAX_SKEW + 1e-6, 0.25), key=sharpness)
    return max(np.arange(best - 0.25, best + 0.25 + 1e-6, 0.025), key=sharpness)


def find_lines(ink_rotated, letter_size):
    """Deskewed ink -> (labels image of line cores, number of lines). A line's core is its density ridge:
    the rows where the blurred ink is densest in its column (the x-height band), widened by a
    quarter letter each way, joined along the line."""
    height, width = ink_rotated.shape
    shrink = max(1.0, letter_size / 10)  # a letter of 10 pixels is plenty to find lines with, and fast
    ink_small = cv2.resize(ink_rotated.astype(np.float32), (max(1, round(width / shrink)), max(1, round(height / shrink))),
                           interpolation=cv2.INTER_AREA)
    letter_size /= shrink
    density = cv2.GaussianBlur(ink_small, (0, 0), sigmaX=3 * letter_size, sigmaY=0.25 * letter_size)
    if not (density > 0.01).any():
        return np.zeros(ink_rotated.shape, np.int32), 0
    reach = max(1, round(letter_size))
    column_max = cv2.dilate(density, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 2 * reach + 1)))
    ridge = (density >= column_max) & (density > 0.3 * np.percentile(density[density > 0.01], 95))
    band = cv2.getStructuringElement(cv2.MORPH_RECT, (max(3, round(letter_size)) | 1, max(3, round(0.5 * letter_size)) | 1))
    count, cores, stats, centres = cv2.connectedComponentsWithStats(cv2.dilate(ridge.astype(np.uint8), band), connectivity=8)
    # A wavy line can leave its ridge in pieces: pieces side by side at the same height are one line.
    line_of_core = np.arange(count)
    order = sorted(range(1, count), key=lambda c: centres[c][1])
    for a_index, a in enumerate(order):
        for b in order[a_index + 1:]:
            if centres[b][1] - centres[a][1] > letter_size:
                break
            a_left, a_right = stats[a, 0], stats[a, 0] + stats[a, 2]
            b_left, b_right = stats[b, 0], stats[b, 0] + stats[b, 2]
            if min(a_right, b_right) - max(a_left, b_left) < letter_size:
                line_of_core[line_of_core == line_of_core[b]] = line_of_core[a]
    _, line_of_core = np.unique(line_of_core, return_inverse=True)
    lines = cv2.resize(line_of_core[cores].astype(np.uint16), (width, height), interpolation=cv2.INTER_NEAREST)
    return lines.astype(np.int32), int(line_of_core.max())


def rotation_onto_canvas(width, height, angle):
    """The affine matrix that rotates an image by `angle` degrees about its centre onto a canvas
    that keeps every corner, and that canvas's (width, height)."""
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    out_w, out_h = int(np.ceil(width * cos + height * sin)) + 2, int(np.ceil(width * sin + height * cos)) + 2
    rotation[:, 2] += (out_w - width) / 2, (out_h - height) / 2
    return rotation, (out_w, out_h)


def remove_rules(ink, darkness):
    """(ink, darkness) without the rules of ruled paper and the lines of forms: straight strokes
    along the lines, longer than a third of the image and RULE_LENGTH pen widths (no handwritten
    stroke is that long and straight), looked for down to half MIN_INK_CONTRAST, as printed rules
    are often fainter than ink. On a rule fainter than the ink, what is ink is the writing's and
    stays; on one as dark as the ink, the rule's pixels with a letter's ink just above and below
    them stay (where the letter crosses it)."""
    ys, xs = np.nonzero(ink)
    if len(xs) == 0:
        return ink, darkness
    pen = stroke_width(ink)
    height, width = ink.shape
    angle = estimate_skew(xs.astype(np.float64), ys.astype(np.float64), max(1.0, pen / 2))  # rules lie along the lines
    rotation, size = rotation_onto_canvas(width, height, angle)
    marks = (cv2.medianBlur(darkness, 3) >= MIN_INK_CONTRAST / 2).astype(np.uint8)
    level = cv2.warpAffine(marks, rotation, size, flags=cv2.INTER_NEAREST)
    reach = max(2, round(pen))
    level = cv2.morphologyEx(level, cv2.MORPH_CLOSE, np.ones((1, 2 * reach + 1), np.uint8))  # gaps of noise in a faint rule
    runs = cv2.morphologyEx(level, cv2.MORPH_OPEN, np.ones((1, int(max(width / 3, RULE_LENGTH * pen))), np.uint8),
                            borderType=cv2.BORDER_CONSTANT, borderValue=0)  # beyond the image's edge is no rule
    core = cv2.warpAffine(runs, cv2.invertAffineTransform(rotation), (width, height), flags=cv2.INTER_NEAREST) > 0
    if not core.any():
        return ink, darkness
    rule = cv2.dilate(core.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # with its soft edges
    if (core & ink).sum() < core.sum() / 2:  # fainter than the ink
        erase = rule & ~ink
    else:
        rest = cv2.dilate((ink & ~rule).astype(np.uint8), np.ones((1, 2 * reach + 1), np.uint8)) > 0  # a slanted stroke too
        above, below = np.zeros_like(rest), np.zeros_like(rest)  # a letter's ink within reach above, below
        for step in range(1, reach + 1):
            above[step:] |= rest[:-step]
            below[:-step] |= rest[step:]
        erase = rule & ~(above | below)
    return ink & ~erase, np.where(erase, 0, darkness)


def find_words(image):
    """BGR or grey uint8 image -> lines (top to bottom) of Words (left to right)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    darkness = flatten(gray)
    ink, darkness = remove_rules(binarize(darkness), darkness)
    if not ink.any():
        return []
    pen = stroke_width(ink)
    labels, stats, keep, ys, xs, component = ink_pieces(ink, pen)
    if not len(ys):
        return []

    angle = estimate_skew(xs.astype(np.float64), ys.astype(np.float64), max(1.0, pen / 2))
    rotation, canvas = rotation_onto_canvas(gray.shape[1], gray.shape[0], angle)
    xr = rotation[0, 0] * xs + rotation[0, 1] * ys + rotation[0, 2]
    yr = rotation[1, 0] * xs + rotation[1, 1] * ys + rotation[1, 2]
    letter_size = float(np.median(stats[keep, cv2.CC_STAT_HEIGHT]))
    line_of_pixel, core_centre = assign_lines(xs, ys, xr, yr, component, keep, pen, letter_size, canvas, gray.shape)
    if line_of_pixel is None:
        return []

    lines = [cut_line_into_words(*(a[line_of_pixel == line] for a in (xs, ys, xr, yr, component)), pen)
             for line in np.argsort(core_centre) if (line_of_pixel == line).any()]
    lines = attach_fragments(lines)
    add_dots(lines, labels, stats, pen, rotation)
    return make_words(lines, darkness, rotation, pen)


def ink_pieces(ink, pen):
    """The ink's pieces (connected components), those smaller than a dot of the pen left out as
    noise: (labels, stats, keep: which pieces count, ys, xs of their pixels, component: each pixel's
    piece), each piece's pixels in one slice."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= max(4, pen * pen)
    keep[0] = False
    ys, xs = np.nonzero(keep[labels])
    order = np.argsort(labels[ys, xs], kind="stable")
    ys, xs = ys[order], xs[order]
    return labels, stats, keep, ys, xs, labels[ys, xs]


def assign_lines(xs, ys, xr, yr, component, keep, pen, letter_size, canvas, shape):
    """The ink pixels (page and deskewed coordinates, ordered by component; `keep` marks the components
    that are ink) -> (the line of each pixel, each line's centre row, deskewed), or (None, None) when
    no line is found. Every component goes to the line whose core holds its ink, a piece in no core
    to the line of the nearest ink in one (give_loose_pieces), one in two cores is split between them
    (split_along_ink)."""
    out_w, out_h = canvas
    col, row = np.clip(np.round(xr).astype(int), 0, out_w - 1), np.clip(np.round(yr).astype(int), 0, out_h - 1)
    ink_rotated = np.zeros((out_h, out_w), bool)
    ink_rotated[row, col] = True
    cores, n_cores = find_lines(ink_rotated, letter_size)
    if n_cores == 0:
        return None, None
    core_of_pixel = cores[row, col]  # 0: outside every core
    in_core = core_of_pixel > 0
    core_centre = np.array([np.median(yr[core_of_pixel == c]) if (core_of_pixel == c).any() else np.inf
                            for c in range(1, n_cores + 1)])

    starts = np.searchsorted(component, np.arange(len(keep) + 1))
    line_of_pixel = np.full(len(xs), -1, np.int64)
    loose = []  # components in no core
    for label in np.nonzero(keep)[0]:
        part = slice(starts[label], starts[label + 1])
        hits = np.bincount(core_of_pixel[part][in_core[part]], minlength=n_cores + 1)[1:]
        big = np.nonzero(hits >= max(pen * pen, 0.1 * hits.sum()))[0] if hits.sum() else []
        if len(big) == 0:
            loose.append(label)
        elif len(big) == 1:
            line_of_pixel[part] = big[0]
        else:  # touches another line (a descender on the ascender below): split where the strokes meet
            lines_touched = big[np.argsort(core_centre[big])]
            line_of_pixel[part] = split_along_ink(xs[part], ys[part], core_of_pixel[part] - 1, lines_touched)
    if loose:
        line_of_pixel = give_loose_pieces(loose, starts, xs, ys, yr, line_of_pixel, core_centre, shape)
    return line_of_pixel, core_centre


def make_words(lines, darkness, rotation, pen):
    """Lines of (words' pixels, x-height, quartiles) -> lines of Words, each word's ink without the
    ink of the others (make_word)."""
    owner = np.zeros(darkness.shape, np.float32)  # each ink pixel's word, numbered from 1 in reading order (0: none)
    for number, (xs, ys, _, _) in enumerate((pixels for words, _, _ in lines for pixels in words), start=1):
        owner[ys, xs] = number
    numbers = itertools.count(1)
    return [[make_word(pixels, next(numbers), quartiles, darkness, owner, rotation, pen) for pixels in words]
            for words, _, quartiles in lines]


def split_along_ink(xs, ys, core, lines):
    """One ink component that reaches into several lines' cores (a descender touching the ascender
    below it): its pixels (page coordinates), the core each is in (-1: none), the lines it reaches,
    top to bottom -> the line of each pixel. Each line floods the component from its pixels in that
    line's core, a pixel a step, and a pixel belongs to the line that reaches it first: a descender
    goes with the line it hangs from, an ascender with the line it rises from, and they part where
    they touch, wherever that is. (Cutting the component at one row cut off the tips of whichever
    stroke reached past it: an f, d or T lost its top.)"""
    left, top = xs.min(), ys.min()
    mask = np.zeros((ys.max() - top + 1, xs.max() - left + 1), np.uint8)
    mask[ys - top, xs - left] = 1
    owner = np.full(mask.shape, -1, np.int64)
    for line in lines:
        owner[ys[core == line] - top, xs[core == line] - left] = line
    kernel = np.ones((3, 3), np.uint8)
    while True:
        free = (mask > 0) & (owner < 0)
        grown = [(line, free & (cv2.dilate((owner == line).astype(np.uint8), kernel) > 0)) for line in lines]
        if not any(reached.any() for _, reached in grown):
            break
        for line, reached in grown:  # reached by two lines in the same step: the upper one's
            owner[reached & (owner < 0)] = line
    return owner[ys - top, xs - left]  # every pixel is reached: the component is connected


def give_loose_pieces(loose, starts, xs, ys, yr, line_of_pixel, core_centre, shape):
    """The components in no line's core (a dot, a comma, the tip of an ascender that binarisation broke
    off its stem) -> each goes to the line of the nearest ink that is in a line: the stroke it was
    part of, rather than the nearest core (between two close lines, an ascender's tip is nearer the
    line above). A page where no ink is in a core: the nearest core. Returns line_of_pixel."""
    anchored = line_of_pixel >= 0
    if anchored.any():
        elsewhere = np.ones(shape, np.uint8)
        elsewhere[ys[anchored], xs[anchored]] = 0
        distance, nearest = cv2.distanceTransformWithLabels(elsewhere, cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
        line_of_nearest = np.zeros(nearest.max() + 1, np.int64)
        line_of_nearest[nearest[ys[anchored], xs[anchored]]] = line_of_pixel[anchored]
    for label in loose:
        part = slice(starts[label], starts[label + 1])
        if anchored.any():
            closest = np.argmin(distance[ys[part], xs[part]])
            line_of_pixel[part] = line_of_nearest[nearest[ys[part][closest], xs[part][closest]]]
        else:
            line_of_pixel[part] = np.argmin(np.abs(core_centre - np.median(yr[part])))
    return line_of_pixel


def cut_line_into_words(xs, ys, xr, yr, component, pen):
    """One line's ink pixels -> (its words, each (xs, ys, xr, yr) pixel arrays, left to right; the line's
    x-height; the quartiles of its rows, deskewed). Gaps are measured in the x-height band, so that
    an f's or a g's tail reaching under the next word does not bridge the gap; each ink component
    then goes whole to the word holding most of its x-height-band ink."""
    x_height = line_x_height(yr, pen)
    columns = np.round(xr).astype(int)
    left = columns.min()
    core = np.abs(yr - np.median(yr)) <= x_height / 2
    if not core.any():
        core = np.ones(len(yr), bool)
    occupied = np.bincount(columns[core] - left, minlength=columns.max() - left + 1) > 0
    starts = np.nonzero(occupied & ~np.r_[False, occupied[:-1]])[0]  # runs of columns with ink
    ends = np.nonzero(occupied & ~np.r_[occupied[1:], False])[0]
    gaps = starts[1:] - ends[:-1] - 1
    word_starts = np.r_[starts[0], starts[np.nonzero(gaps > WORD_GAP * x_height)[0] + 1]]
    word_of_pixel = np.maximum(np.searchsorted(word_starts, columns - left, side="right") - 1, 0)
    for label in np.unique(component):
        mine = component == label
        votes = word_of_pixel[mine & core] if (mine & core).any() else word_of_pixel[mine]
        word_of_pixel[mine] = np.bincount(votes).argmax()
    words = [tuple(a[word_of_pixel == word] for a in (xs, ys, xr, yr)) for word in np.unique(word_of_pixel)]
    return words, x_height, tuple(np.percentile(yr, [25, 75]))


def line_x_height(yr, pen):
    """A line's x-height from its ink rows: most ink lies in the x-height band, so the rows holding
    the middle half of the ink span about half of it (ascenders and descenders, thin and few, move
    the quartiles little)."""
    lower, upper = np.percentile(yr, [25, 75])
    return max(pen, 2 * float(upper - lower))


def attach_fragments(lines):
    """Lines of (words, x-height, quartiles) -> the same without fragments: every fragment (a piece of ink under half an
    x-height tall and under one x-height wide: a dot, a stray piece of a letter cut off its word)
    within a word gap of a real word joins the nearest one on its own line, else the nearest on
    another line, and lines left empty are gone. A fragment far from any word (a full stop
    written apart, as IAM counts it) stays a word of its own. The x-height is the page's, that of
    the line holding the median ink pixel: a line of fragments has a tiny one of its own."""
    def box(word):
        return word[0].min(), word[1].min(), word[0].max(), word[1].max()

    ink = [sum(len(word[0]) for word in words) for words, _, _ in lines]
    heights = sorted((x_height, pixels) for (_, x_height, _), pixels in zip(lines, ink))
    x_height = heights[np.searchsorted(np.cumsum([pixels for _, pixels in heights]), sum(ink) / 2)][0]

    def is_fragment(word):
        left, top, right, bottom = box(word)
        return bottom - top + 1 < 0.5 * x_height and right - left + 1 < x_height

    real = [[word for word in words if not is_fragment(word)] for words, _, _ in lines]
    boxes = [(number, index, box(word)) for number, words in enumerate(real) for index, word in enumerate(words)]
    for number, (words, _, _) in enumerate(lines):
        for word in words:
            if not is_fragment(word):
                continue
            left, top, right, bottom = box(word)

            def distance(entry):
                other = entry[2]
                return np.hypot(max(0, other[0] - right, left - other[2]), max(0, other[1] - bottom, top - other[3]))
            near = [entry for entry in boxes if distance(entry) <= WORD_GAP * x_height]
            if not near:
                real[number].append(word)
                continue
            own_line = [entry for entry in near if entry[0] == number]
            near_line, index, _ = min(own_line or near, key=distance)
            real[near_line][index] = tuple(np.r_[mine, theirs] for mine, theirs in zip(real[near_line][index], word))
    return [(sorted(words, key=lambda word: word[0].min()), *line[1:]) for words, line in zip(real, lines) if words]


def add_dots(lines, labels, stats, pen, rotation):
    """Gives back to their words the dots that finding the lines left out as too small (an i's dot
    can be smaller than the pen is wide; noise specks are that small too, so only the specks just
    above or on a word, within its columns, count). Changes `lines` in place."""
    area = stats[:, cv2.CC_STAT_AREA]
    dots = np.nonzero((area >= max(3, 0.5 * pen * pen)) & (area < max(4, pen * pen)))[0]
    dots = dots[dots > 0]
    if len(dots) == 0:
        return
    ys, xs = np.nonzero(np.isin(labels, dots))
    label = labels[ys, xs]
    for words, x_height, _ in lines:
        for index, (wx, wy, wxr, wyr) in enumerate(words):
            left, right, top, bottom = wx.min(), wx.max(), wy.min() - x_height, wy.max()
            on_word = (xs >= left) & (xs <= right) & (ys >= top) & (ys <= bottom)
            for dot in np.unique(label[on_word]):
                mine = label == dot
                if not on_word[mine].all():
                    continue
                dx, dy = xs[mine], ys[mine]
                dxr = rotation[0, 0] * dx + rotation[0, 1] * dy + rotation[0, 2]
                dyr = rotation[1, 0] * dx + rotation[1, 1] * dy + rotation[1, 2]
                words[index] = (np.r_[wx, dx], np.r_[wy, dy], np.r_[wxr, dxr], np.r_[wyr, dyr])
                wx, wy, wxr, wyr = words[index]
                label[mine] = -1  # given to this word


def make_word(pixels, number, line_quartiles, darkness, owner, rotation, pen):
    """A word's pixels (xs, ys in the page; xr, yr deskewed) and its number in `owner` -> Word. Its
    ink keeps the page's shades of grey (the flattened darkness, deskewed): on its own pixels and a
    pen width around them (the soft edges of the strokes, as in the scans the model learnt from:
    pure black and white read worse), and everywhere in its box that is not near another word's
    ink (faint strokes and specks binarisation left out belong to whatever they are near). What is
    barely darker than the paper is paper: white, like the margins reading_images adds (noisy paper
    in the box beside pure white around it read worse)."""
    xs, ys, xr, yr = pixels
    columns, rows = np.round(xr).astype(int), np.round(yr).astype(int)
    own = np.zeros((rows.max() - rows.min() + 1, columns.max() - columns.min() + 1), np.uint8)
    own[rows - rows.min(), columns - columns.min()] = 1
    to_crop = rotation - np.array([[0, 0, columns.min()], [0, 0, rows.min()]])
    shades = cv2.warpAffine(darkness, to_crop, (own.shape[1], own.shape[0]), flags=cv2.INTER_LINEAR)
    words_here = cv2.warpAffine(owner, to_crop, (own.shape[1], own.shape[0]), flags=cv2.INTER_NEAREST)
    others = ((words_here > 0) & (words_here != number)).astype(np.uint8)
    pen_square = np.ones((2 * max(1, round(pen)) + 1,) * 2, np.uint8)
    keep = (cv2.dilate(own, pen_square) > 0) | (cv2.dilate(others, pen_square) == 0)
    keep &= shades >= MIN_INK_CONTRAST / 2  # the paper's noise white, as the paper around the box will be
    box = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
    return Word(box, np.where(keep, shades, 0), tuple(float(q - rows.min()) for q in line_quartiles))


def reading_images(word):
    """The two ways a word is shown to the recognizer, without other words' ink, dark on white:
    cut tight around the ink with a margin of 3% (as IAM and the demo set cut words), and cut to its
    line's writing band (as gw_words cuts them: every word of a line in the same band, ascender line
    to descender line, so a word without ascenders keeps the empty space above it). The band is
    placed by htr.preprocess.writing_band, as on gw_words."""
    ink = np.round(255 * (1 - word.ink)).astype(np.uint8)
    margin = max(1, round(0.03 * ink.shape[0]))
    tight = np.pad(ink, margin, constant_values=255)
    band_top, band_bottom = writing_band(*word.line_quartiles)
    top, bottom = int(np.floor(min(band_top, 0))), int(np.ceil(max(band_bottom, ink.shape[0])))
    margin = max(1, round(0.02 * (bottom - top)))
    band = np.full((bottom - top, ink.shape[1] + 2 * margin), 255, np.uint8)
    band[-top:-top + ink.shape[0], margin:margin + ink.shape[1]] = ink
    return cv2.cvtColor(tight, cv2.COLOR_GRAY2BGR), cv2.cvtColor(band, cv2.COLOR_GRAY2BGR)
