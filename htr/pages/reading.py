"""read_page: a word, a line or a whole page -> its words (box, text, confidence), lines and text.
htr.pages.segmentation finds the words; the recognizer reads them in batches."""
import numpy as np

from htr.images import UnreadableImage
from htr.pages.segmentation import Word, find_words, reading_images

MAX_PAGE_PIXELS = 50_000_000  # read_page works on the full image: a 48-megapixel phone photo, not much more
PAGE_BATCH = 64  # read_page reads this many words per model call
WHOLE_WORD_CHECK = 16  # read_page also reads an image whole if it finds at most this many words in it,
WHOLE_WORD_CONFIDENCE = 0.5  # and keeps that reading if at least this sure of it (a whole line, squashed, reads unsure)


def read_page(model, image):
    """A BGR uint8 image of a word, a line or a page -> {"words": [{"box": [x, y, w, h], "text",
    "confidence", "line"}, ...] in reading order, "lines": [{"box", "text"}, ...], "text": the lines
    joined by newlines}; boxes in pixels of `image`. segmentation.py finds the words; each is read
    without the other words' ink, dark on white, cut in two ways (tight, as IAM cuts words, and to its
    line's band, as gw_words does); the page is read the way the model is more confident of overall,
    which is the way its training words were cut (per word, a confident misreading of the wrong cut
    would win too often). An image with a few words may be one word cut by hand that segmentation
    broke up (a small image, or strokes of the neighbouring lines at its edges): it is also read
    whole, as predict reads it, and so read when that reading says something and is likelier than
    all its pieces' together (and, for more than one piece, likely).
    UnreadableImage for an image it cannot work on; a page without writing gives no words."""
    check_page(image)
    lines = find_words(image)
    words = [(number, word) for number, line in enumerate(lines) for word in line]
    readings = {"tight": ([], []), "band": ([], [])}  # texts and confidences of each cut
    for start in range(0, len(words), PAGE_BATCH // 2):
        cuts = [reading_images(word) for _, word in words[start:start + PAGE_BATCH // 2]]
        batch_texts, batch_confidences = model.predict_batch([image for pair in cuts for image in pair])
        for index, cut in enumerate(("tight", "band")):
            readings[cut][0].extend(batch_texts[index::2])
            readings[cut][1].extend(round(float(confidence), 4) for confidence in batch_confidences[index::2])
    texts, certainties = max(readings.values(), key=lambda reading: sum(reading[1]))
    if 0 < len(words) <= WHOLE_WORD_CHECK:  # perhaps one word cut by hand, broken up
        whole_text, whole_certainty = model.predict_batch([image])
        floor = WHOLE_WORD_CONFIDENCE if len(words) > 1 else 0  # one piece: whichever reading is likelier
        if whole_text[0] and whole_certainty[0] > max(floor, np.prod(certainties)):
            left, top = min(word.box[0] for _, word in words), min(word.box[1] for _, word in words)
            right = max(word.box[0] + word.box[2] for _, word in words)
            bottom = max(word.box[1] + word.box[3] for _, word in words)
            lines = [[Word([left, top, right - left, bottom - top], None, None)]]
            words, texts, certainties = [(0, lines[0][0])], whole_text, [round(float(whole_certainty[0]), 4)]
    result = {"words": [{"box": word.box, "text": text, "confidence": certainty, "line": number}
                        for (number, word), text, certainty in zip(words, texts, certainties)], "lines": []}
    for number, line in enumerate(lines):
        left, top = min(word.box[0] for word in line), min(word.box[1] for word in line)
        right = max(word.box[0] + word.box[2] for word in line)
        bottom = max(word.box[1] + word.box[3] for word in line)
        text = " ".join(word["text"] for word in result["words"] if word["line"] == number and word["text"])
        result["lines"].append({"box": [left, top, right - left, bottom - top], "text": text})
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
