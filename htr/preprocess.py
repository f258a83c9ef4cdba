"""Prepare an image as the model takes it, in one place: training (PrepareImage in the DataProvider),
inference (ImageToWordModel.resize), page reading and the web page all call prepare, so the pixels
a model learnt from and the pixels it reads cannot drift apart.

    prepare(image, height, width, crop, keep_aspect_ratio)   # any BGR image -> the model's input

The steps: crop_to_ink cuts the word to its ink at the left and right (crop "band": to its writing
band above and below too), then the word is stretched to the model's size, or scaled to fit and
padded with white paper. Levelling the paper (tint, uneven light, shadows) happens inside the
network (model.py's PaperNormalization), so every ONNX consumer gets it; paper_brightness is the
same estimate in NumPy, for finding the ink here and on pages (htr.pages.segmentation.flatten).
"""
import cv2
import numpy as np
from mltu.annotations.images import Image
from mltu.transformers import ImageResizer, Transformer

WHITE = (255, 255, 255)  # the padding, like the paper around the word
# In a gw_words image (a word cut to its line's band, 120 pixels high), a quarter of the line's ink lies
# above LINE_QUARTILES[0] of the height and three quarters above LINE_QUARTILES[1] (medians over its validation lines).
LINE_QUARTILES = (0.433, 0.608)
MIN_WIDTH, MAX_WIDTH = 32, 2048  # a line model's input width, in pixels


def paper_brightness(grey, window, shrink=1):
    """The paper's brightness under every pixel of a grey image: the brightest grey within `window`
    pixels (a max filter reaches past the strokes to the paper beside them), box-blurred over the same
    window so it has no edges of its own. shrink > 1 estimates it on a copy that much smaller (`window`
    in its pixels), for speed on large pages. float32, the image's size."""
    small = cv2.resize(grey, None, fx=1 / shrink, fy=1 / shrink, interpolation=cv2.INTER_AREA) if shrink > 1 else grey
    paper = cv2.blur(cv2.dilate(small, np.ones((window, window), np.uint8)), (window, window))
    if shrink > 1:
        paper = cv2.resize(paper, (grey.shape[1], grey.shape[0]), interpolation=cv2.INTER_LINEAR)
    return paper.astype(np.float32)


def writing_band(first, third):
    """The rows of a line's writing band, ascender line to descender line, from the rows above which a
    quarter and three quarters of its ink lie, placed as gw_words places them (LINE_QUARTILES)."""
    height = max(third - first, 1) / (LINE_QUARTILES[1] - LINE_QUARTILES[0])
    return first - LINE_QUARTILES[0] * height, first + (1 - LINE_QUARTILES[0]) * height


def crop_to_ink(image, band=False):
    """A word image (BGR uint8) cut at the left and right to its ink, plus a small margin: a
    photo's loose crop would otherwise squeeze the word into part of the model's width, which
    a scan's tight crop fills. Top and bottom stay: where the ink sits in the height tells a
    small letter from a capital or an ascender (cropping them to the ink too stretched short words
    to the full height, and a model trained so read scans far worse).

    band=True (train.py --crop band, for photos) also cuts the paper above and below that lies
    beyond the word's writing band, ascender line to descender line, placed from the rows that hold
    the middle half of its ink as a page's lines are (writing_band): a loosely cropped photo gets a
    scan's proportions, while a scan, already cut to its band, keeps nearly all its height, and no
    ink is ever cut.

    Ink is what is clearly darker than the paper around it (paper_brightness, within a quarter of
    the image's height), so tinted paper, uneven light and (mostly) shadows are not ink. Pixels at
    least half as dark, against their paper, as the darkest ink count, down to 0.15 so noise never
    does. A page with no ink comes back as it is."""
    top, bottom, left, right = ink_box(image, band)
    if (top, bottom, left, right) == (0, image.shape[0], 0, image.shape[1]):
        return image  # nothing to cut, a page with no ink among them
    return image[top:bottom, left:right]


def ink_darkness(image):
    """How much darker than the paper around it (paper_brightness, within a quarter of the image's
    height) each pixel of a word or line image (BGR uint8) is, as a share of that paper's brightness:
    float32, 0 on paper. ink_mask thresholds it; a caller that needs the ink twice computes it once."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return cv2.blur(1 - grey / np.maximum(paper_brightness(grey, max(3, grey.shape[0] // 4)), 1), (3, 3))


def ink_mask(image, darkness=None):
    """Where the ink of a word or line image (BGR uint8) is: clearly darker than the paper around it
    (crop_to_ink says how clearly). `darkness`: the image's ink_darkness, when the caller has it."""
    ink = ink_darkness(image) if darkness is None else darkness
    return ink > max(0.5 * ink.max(), 0.15)


def ink_box(image, band=False, mask=None):
    """(top, bottom, left, right) of crop_to_ink's cut, in pixels of `image`: the whole image when it
    has no ink. `mask`: the image's ink_mask, when the caller has it."""
    mask = ink_mask(image) if mask is None else mask
    height, width = mask.shape
    columns = np.flatnonzero(mask.any(axis=0))
    if not len(columns):
        return 0, height, 0, width
    margin = max(1, height // 50)
    top, bottom = 0, height
    if band:
        rows = np.nonzero(mask)[0]
        band_top, band_bottom = writing_band(*np.percentile(rows, [25, 75]))
        top = int(max(0, min(band_top, rows.min() - margin)))
        bottom = int(min(height, max(band_bottom, rows.max() + margin + 1)))
    return top, bottom, max(columns[0] - margin, 0), min(columns[-1] + margin + 1, width)


def prepare(image, height, width, crop=None, keep_aspect_ratio=False):
    """Any BGR uint8 image -> exactly what the model is fed, (height, width, 3) uint8: cut to its ink
    (crop "columns" or "band"; "none", or None as models from before cropping were trained, leaves it whole),
    then stretched to the size, or scaled to fit and padded with white (keep_aspect_ratio). The
    resizing is mltu's ImageResizer's, which training used before this module existed. width None
    (a line model): scaled to `height`, its width following (scale_to_height)."""
    if crop in ("columns", "band"):
        image = crop_to_ink(image, band=crop == "band")
    if width is None:
        return scale_to_height(image, height)
    if keep_aspect_ratio:
        return ImageResizer.resize_maintaining_aspect_ratio(image, width, height, WHITE)
    return cv2.resize(image, (width, height))


def scale_to_height(image, height):
    """A line scaled to `height` pixels, as wide as its proportions make it: at least MIN_WIDTH (padded
    with paper, so a one-letter word still has time steps for CTC), at most MAX_WIDTH (squeezed, so a
    page passed as a line cannot take gigabytes). Area averaging when shrinking keeps thin strokes."""
    old_height, old_width = image.shape[:2]
    new_width = scaled_width(old_width, old_height, height)
    shrinking = height < old_height or new_width < old_width
    image = cv2.resize(image, (new_width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if new_width < MIN_WIDTH:
        image = cv2.copyMakeBorder(image, 0, 0, 0, MIN_WIDTH - new_width, cv2.BORDER_CONSTANT, value=WHITE)
    return image


def scaled_width(width, height, new_height):
    """The width scale_to_height gives an image of width x height, before any padding."""
    return min(MAX_WIDTH, max(1, round(width * new_height / height)))


def stack_padded(images):
    """Prepared images -> one float32 batch, each padded on the right with paper to the widest: a line
    model's batch (training's and inference's alike) is as wide as its widest line."""
    width = max(image.shape[1] for image in images)
    return np.stack([cv2.copyMakeBorder(image, 0, 0, 0, width - image.shape[1], cv2.BORDER_CONSTANT, value=WHITE)
                     if image.shape[1] < width else image for image in images]).astype(np.float32)


class PrepareImage(Transformer):
    """prepare as an mltu transformer, for the training DataProvider."""

    def __init__(self, height, width, crop=None, keep_aspect_ratio=False):
        self.height, self.width, self.crop, self.keep_aspect_ratio = height, width, crop, keep_aspect_ratio

    def __call__(self, image: Image, annotation):
        image.update(prepare(image.numpy(), self.height, self.width, self.crop, self.keep_aspect_ratio))
        return image, annotation
