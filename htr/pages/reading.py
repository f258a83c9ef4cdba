"""read_page: a word, a line or a whole page -> its words (box, text, confidence), lines and text.
htr.pages.segmentation finds the words; the recognizer reads them in batches."""
import numpy as np

from htr.images import UnreadableImage
from htr.pages.segmentation import Word, find_words, reading_images

MAX_PAGE_PIXELS = 50_000_000  # read_page works on the full image: a 48-megapixel phone photo, not much more
PAGE_BATCH = 64  # read_page reads this many words per model call
WHOLE_WORD_CHECK = 16  # read_page also reads an image whole if it finds at most this many words in it,
WHOLE_WORD_CONFIDENCE = 0.5  # and keeps that reading if at least this sure of it


def read_page(model, image):
    """A BGR uint8 image of a word, a line or a page -> {"words": [{"box": [x, y, w, h], "text",
    "confidence", "line"}, ...] in reading order, "lines": [{"box", "text"}, ...], "text": the lines
    joined by newlines}; boxes in pixels of `image`. htr.pages.segmentation finds the words, and
    read_words reads them. An image with a few words may be one word cut by hand that segmentation
    broke up (a small image, or strokes of the neighbouring lines at its edges): read_whole decides.
    UnreadableImage for an image it cannot work on; a page without writing gives no words."""
    check_page(image)
    lines = find_words(image)
    words = [(number, word) for number, line in enumerate(lines) for word in line]
    texts, certainties = read_words(model, [word for _, word in words])
    if 0 < len(words) <= WHOLE_WORD_CHECK:  # perhaps one word cut by hand, broken up
        whole = read_whole(model, image, [word for _, word in words], certainties)
        if whole:
            lines, texts, certainties = whole
            words = [(0, lines[0][0])]
    return page_result(lines, words, texts, certainties)


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
