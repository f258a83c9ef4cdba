"""read_page: a word, a line or a whole page -> its words (box, text, confidence), lines and text.
With a line model (one whose input width follows the image), htr.pages.line_finder finds the page's lines and
the model reads each whole, its words and their boxes coming from the reading's alignment; with a word
model, htr.pages.segmentation finds the words and the model reads them in batches."""
import cv2
import numpy as np

from htr.images import UnreadableImage
from htr.pages.line_finder import find_page_lines
from htr.pages.photo import flatten_photo, to_photo_box, to_photo_points
from htr.pages.segmentation import Word, find_words, reading_images
from htr.preprocess import ink_darkness

MAX_PAGE_PIXELS = 50_000_000  # read_page works on the full image: a 48-megapixel phone photo, not much more
PAGE_BATCH = 64  # read_page reads this many words per model call
WHOLE_WORD_CHECK = 16  # read_page also reads an image whole if it finds at most this many words in it,
WHOLE_WORD_CONFIDENCE = 0.5  # and keeps that reading if at least this sure of it
# A found line is read from its ink's box widened by LINE_MARGIN pixels, and by these shares of its height
# above and below: as gw_lines' lines were cut, around their words' polygons (medians on pages 270-279).
LINE_MARGIN, MARGIN_ABOVE, MARGIN_BELOW = 8, 0.15, 0.11
MARGIN_ENDS = 1.2
FLATTEST_CUT = 1.0  # a line is cut at least this many times its page's median line height tall
LINE_SHAPE = 1.5  # an image at least this many times as wide as high may be one line, cut by hand
FAINT_INK = 0.2  # faint_ink: a fifth as dark as the darkest ink
# word_ink_boxes: a mark above a line's core (a dot, a raised "th") ends at most MARK_REACH core heights
# above it and is at most MARK_HEIGHT of them tall
MARK_REACH, MARK_HEIGHT = 2, 1.5


def read_page(model, image):
    """A BGR uint8 image of a word, a line or a page, scanned or photographed -> {"words": [{"box":
    [x, y, w, h], "text", "confidence", "line"}, ...] in reading order, "lines": [{"box", "text", ...},
    ...], "text": the lines joined by newlines}; boxes in pixels of `image`. A photo of a sheet is
    flattened first (htr.pages.photo), and what is found on it mapped back onto the photo. A line
    model reads each line found whole (read_lines_of_page); with a word model htr.pages.segmentation
    finds the words and read_words reads them, and an image with a few words may be one word cut by
    hand that segmentation broke up (read_whole decides). UnreadableImage for an image it cannot work
    on; a page without writing gives no words."""
    check_page(image)
    page, photo = flatten_photo(image)
    result = read_lines_of_page(model, page) if model.width is None else read_words_of_page(model, page)
    if photo["flattened"]:
        for item in result["words"] + result["lines"]:
            item["box"] = to_photo_box(item["box"], photo)
            for key in ("polygon", "baseline"):
                if item.get(key) is not None:
                    item[key] = [[int(round(x)), int(round(y))] for x, y in to_photo_points(item[key], photo)]
    return result


def read_words_of_page(model, image):
    """A word model's reading of a page: the words segmentation finds, each read alone."""
    lines = find_words(image)
    words = [(number, word) for number, line in enumerate(lines) for word in line]
    texts, certainties = read_words(model, [word for _, word in words])
    if 0 < len(words) <= WHOLE_WORD_CHECK:  # perhaps one word cut by hand, broken up
        whole = read_whole(model, image, [word for _, word in words], certainties)
        if whole:
            lines, texts, certainties = whole
            words = [(0, lines[0][0])]
    return page_result(lines, words, texts, certainties)


def read_lines_of_page(model, image):
    """A line model's reading of a page: every line htr.pages.line_finder finds, cut as a rectangle around
    it (LINE_MARGIN, MARGIN_ABOVE, MARGIN_BELOW), is read whole (ImageToWordModel.read_lines); each
    word's box is the ink, within the line's own rows, of the columns the alignment gives it. A line
    read as nothing is left out (a speck or a stamp the line finder took for writing). Lines keep
    their polygon and baseline. An image shaped like a line is also read whole, as one line, and the
    surer reading (per character) kept."""
    found = find_page_lines(image)
    height, width = image.shape[:2]
    cuts = [line_cut(line["box"], found, width, height) for line in found]
    if width >= LINE_SHAPE * height and len(found) <= 1:  # one line, cut by hand: read it whole
        found, cuts = [[{"box": [0, 0, width, height]}]], [[(0, 0, width, height)]]
    elif width >= LINE_SHAPE * height:  # perhaps one line, cut by hand: read it whole too
        found, cuts = [found, [{"box": [0, 0, width, height]}]], [cuts, [(0, 0, width, height)]]
    else:
        found, cuts = [found], [cuts]
    images = [image[top:bottom, left:right] for part in cuts for left, top, right, bottom in part]
    darknesses = [ink_darkness(cut) for cut in images]
    readings = model.read_lines(images, darknesses)
    results = []
    for part_found, part_cuts in zip(found, cuts):
        results.append(lines_result(part_found, readings[:len(part_cuts)], part_cuts, darknesses[:len(part_cuts)]))
        readings, darknesses = readings[len(part_cuts):], darknesses[len(part_cuts):]
    if len(results) == 2 and len(results[0]["lines"]) < 2:
        return results[1]  # one line found in a line's shape: the image is that line
    return max(results, key=sureness)


def line_cut(box, found, width, height):
    """The rectangle (left, top, right, bottom) a found line is read from: its box widened by the
    margins, and at least FLATTEST_CUT times the page's median line height tall around its middle (a
    line whose ascenders and descenders went to its neighbours is still read whole)."""
    x, y, w, h = box
    median = np.median([line["box"][3] for line in found])
    grow = max(0.0, FLATTEST_CUT * median - h) / 2
    return (max(0, round(x - LINE_MARGIN - MARGIN_ENDS * h)), max(0, round(y - grow - LINE_MARGIN - MARGIN_ABOVE * h)),
            min(width, round(x + w + LINE_MARGIN + MARGIN_ENDS * h)), min(height, round(y + h + grow + LINE_MARGIN + MARGIN_BELOW * h)))


def sureness(result):
    """How sure a reading is, per character, over its lines (0 for no lines): a page's lines read
    one by one and the same image read as one line compare so, as longer texts are less likely."""
    lines = [line["confidence"] ** (1 / max(1, len(line["text"]))) for line in result["lines"]]
    return sum(lines) / len(lines) if lines else 0.0


def lines_result(found, readings, cuts, darknesses):
    """read_page's result from the lines found, their readings, the rectangles they were cut by and
    those cuts' ink_darkness."""
    result = {"words": [], "lines": []}
    for line, reading, (left, top, right, bottom), darkness in zip(found, readings, cuts, darknesses):
        if not reading["text"].strip():
            continue
        x, y, w, h = line["box"]
        boxes = word_ink_boxes(faint_ink(darkness), [word["box"] for word in reading["words"]], y - top, y + h - top)
        for word, box in zip(reading["words"], boxes):
            result["words"].append({"box": [box[0] + left, box[1] + top, box[2], box[3]], "text": word["text"],
                                    "confidence": word["confidence"], "line": len(result["lines"])})
        result["lines"].append({**line, "text": reading["text"], "confidence": reading["confidence"]})
    result["text"] = "\n".join(line["text"] for line in result["lines"])
    return result


def faint_ink(darkness):
    """Where a line cut's ink is, faint strokes too, from its ink_darkness: anything FAINT_INK as dark,
    against its paper, as the darkest ink (ink_mask's half loses the thin upstrokes that join an
    ascender to its letter)."""
    return darkness > max(FAINT_INK * darkness.max(), 0.1)


def word_ink_boxes(ink, boxes, first_row, end_row):
    """The words' [x, y, w, h] in their line cut, from its ink within rows [first_row, end_row): each
    piece of ink (connected component) that reaches into the line's core, the rows where its ink is
    densest (its x-height), goes whole to the word whose columns (from the alignment) hold its middle,
    and a word's box holds its pieces. The strokes of the lines above and below reach into the cut,
    and even into the line's box, but not into its core. Then the marks just above the core (ending at
    most MARK_REACH core heights above it, at most MARK_HEIGHT of them tall: an i's dot, a raised "th")
    go to the word whose pieces' columns hold their middle: the line's own marks, as the line above
    reaches down into those rows with its long strokes, cut by the rows' top, not with its dots. A
    word given no piece keeps its columns, at those rows' full height. Rules (rules) are no word's."""
    band = (ink & ~rules(ink))[first_row:end_row].astype(np.uint8)
    rows = band.sum(axis=1)
    fallback = [[x, first_row, w, end_row - first_row] for x, _, w, _ in boxes]
    if not rows.max() or not boxes:
        return fallback
    core = np.flatnonzero(rows >= 0.5 * rows.max())
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(band, connectivity=8)
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right, bottom = left + stats[:, cv2.CC_STAT_WIDTH], top + stats[:, cv2.CC_STAT_HEIGHT]
    in_core = np.zeros(count, bool)
    in_core[labels[core[0]:core[-1] + 1].ravel()] = True
    in_core[0] = False  # the paper
    middles = np.float64([x + w / 2 for x, _, w, _ in boxes])
    owner = np.full(count, -1)
    for piece in np.flatnonzero(in_core):
        inside = [i for i, (x, _, w, _) in enumerate(boxes) if x <= centroids[piece][0] < x + w]
        owner[piece] = inside[0] if inside else int(np.argmin(np.abs(middles - centroids[piece][0])))
    spans = [(left[owner == word].min(), right[owner == word].max()) if (owner == word).any() else (0, 0)
             for word in range(len(boxes))]
    height = core[-1] + 1 - core[0]
    marks = np.flatnonzero(~in_core & (top > 0) & (bottom <= core[0]) & (bottom >= core[0] - MARK_REACH * height)
                           & (bottom - top <= MARK_HEIGHT * height))
    for piece in marks:
        holding = [word for word, (x0, x1) in enumerate(spans) if x0 <= centroids[piece][0] < x1]
        owner[piece] = holding[0] if holding else -1
    result = []
    for word, box in enumerate(fallback):
        own = owner == word
        if not own.any():
            result.append(box)
            continue
        x0, y0 = left[own].min(), top[own].min()
        result.append([int(x0), first_row + int(y0), int(right[own].max() - x0), int(bottom[own].max() - y0)])
    return result


def rules(ink):
    """The ink of a line cut that runs from its top edge to its bottom one: a column's rule or the
    scanner's dark border, as no letter of one line is that tall (the cut holds the line's margins too).
    It touches the line's core, so without this the first or last word's box would reach to it."""
    if not (ink[0].any() and ink[-1].any()):
        return np.zeros_like(ink, dtype=bool)
    _, labels = cv2.connectedComponents(ink.astype(np.uint8), connectivity=8)
    is_rule = np.zeros(labels.max() + 1, bool)
    is_rule[np.intersect1d(labels[0], labels[-1])] = True
    is_rule[0] = False  # the paper
    return is_rule[labels]


def read_words(model, words):
    """Words -> (texts, confidences). Each word is read without the other words' ink, dark on white,
    cut in two ways (tight, as IAM cuts words, and to its line's band, as gw_words does); the page is
    read the way the model is more confident of overall, which is the way its training words were cut
    (per word, a confident misreading of the wrong cut would win too often)."""
    readings = {"tight": ([], []), "band": ([], [])}  # texts and confidences of each cut
    for start in range(0, len(words), PAGE_BATCH // 2):
        cuts = [reading_images(word) for word in words[start:start + PAGE_BATCH // 2]]
        batch_texts, batch_confidences = model.predict_batch([image for pair in cuts for image in pair])
        for index, cut in enumerate(("tight", "band")):
            readings[cut][0].extend(batch_texts[index::2])
            readings[cut][1].extend(round(float(confidence), 4) for confidence in batch_confidences[index::2])
    return max(readings.values(), key=lambda reading: sum(reading[1]))


def read_whole(model, image, words, certainties):
    """The image read whole, as predict reads it -> (lines, texts, confidences) of one word over all of
    `words`, when that reading says something and is likelier than all the pieces' readings together
    (and, for more than one piece, likely: a whole line, squashed, reads unsure); else None."""
    whole_text, whole_certainty = model.predict_batch([image])
    floor = WHOLE_WORD_CONFIDENCE if len(words) > 1 else 0  # one piece: whichever reading is likelier
    if not whole_text[0] or whole_certainty[0] <= max(floor, np.prod(certainties)):
        return None
    return [[Word(enclosing_box([word.box for word in words]), None, None)]], whole_text, [round(float(whole_certainty[0]), 4)]


def enclosing_box(boxes):
    """[x, y, w, h] boxes -> the smallest [x, y, w, h] holding them all."""
    left, top = min(box[0] for box in boxes), min(box[1] for box in boxes)
    right, bottom = max(box[0] + box[2] for box in boxes), max(box[1] + box[3] for box in boxes)
    return [left, top, right - left, bottom - top]


def page_result(lines, words, texts, certainties):
    """The words read, with their lines' boxes and texts, as read_page returns them."""
    result = {"words": [{"box": word.box, "text": text, "confidence": certainty, "line": number}
                        for (number, word), text, certainty in zip(words, texts, certainties)], "lines": []}
    for number, line in enumerate(lines):
        text = " ".join(word["text"] for word in result["words"] if word["line"] == number and word["text"])
        result["lines"].append({"box": enclosing_box([word.box for word in line]), "text": text})
    result["text"] = "\n".join(line["text"] for line in result["lines"])
    return result


def check_page(image):
    """UnreadableImage unless `image` is something read_page can look for writing in."""
    if image is None or getattr(image, "size", 0) == 0:
        raise UnreadableImage("empty image (no pixels)")
    height, width = image.shape[:2]
    if min(height, width) < 8:
        raise UnreadableImage(f"too small ({width}x{height} pixels): a page needs at least 8 pixels each way")
    if height * width > MAX_PAGE_PIXELS:
        raise UnreadableImage(f"too large ({width}x{height}, {height * width / 1e6:.0f} megapixels): scale it down to at most "
                              f"{MAX_PAGE_PIXELS / 1e6:.0f} megapixels")
    if int(image.max()) - int(image.min()) < 8:
        raise UnreadableImage("blank (one flat colour): there is nothing to read")
