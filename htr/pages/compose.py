"""Pages made of real word images, with the truth about them, to measure page reading on
(benchmarks.quality pages, tests/test_pages.py): a dataset's words as pages of lines, a page
composed from them, and how found word boxes and text compare with the true ones."""
import os
from collections import defaultdict

import cv2
import numpy as np


def dataset_lines(dataset_dir, split=None):
    """A dataset in the IAM words layout as pages of lines of (image path, text), in writing order:
    word id g30-305x-04-07 is page g30-305x, line 04, word 07. split="valid" keeps only the ids in
    splits/valid.txt: words a model trained on the train split never saw."""
    keep = None
    if split:
        with open(os.path.join(dataset_dir, "splits", f"{split}.txt")) as f:
            keep = {line.strip() for line in f if line.strip()}
    pages = defaultdict(lambda: defaultdict(list))
    with open(os.path.join(dataset_dir, "words.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\r\n").split(" ")
            if line.startswith("#") or len(fields) < 9 or fields[1] != "ok" or (keep is not None and fields[0] not in keep):
                continue
            form, page, line_number = fields[0].split("-")[:3]
            path = os.path.join(dataset_dir, "words", form, f"{form}-{page}", f"{fields[0]}.png")
            pages[f"{form}-{page}"][line_number].append((fields[0], path, fields[-1]))
    return [[[(path, text) for _, path, text in sorted(words)] for _, words in sorted(lines.items())]
            for _, lines in sorted(pages.items())]


def compose_page(lines, rng, angle=None, line_pitch=None, gaps=(0.3, 0.6), jpeg_quality=None, ruled=False):
    """A photographed-looking page made of word images, and the truth about it.

    lines: [[(BGR word image, text), ...], ...] in reading order. Sizes are in units of the tall words'
    ink height (the 90th percentile of the words' ink heights: ascender to descender). Each word's
    ink (Otsu's threshold) goes left to right with gaps of `gaps` units (natural for gw_words: about
    1-2 x-heights; a script with short ascenders needs more). Its height on the line: where all word
    images are equally high, the dataset cut them to their line's band (gw_words), so the bands'
    centres sit on the line's centre, keeping the writer's own baseline; otherwise the word's middle
    ink row (in its x-height band) does, +-3% of a unit. Lines are line_pitch units apart
    (default 0.8-0.95: close enough that some ascenders and descenders touch). Then toned
    paper, one ink colour, light falling off away from a lamp, noise, a rotation by `angle` degrees
    (default: uniform in +-2) and, with jpeg_quality, a JPEG round trip. ruled: on ruled paper, a
    light blue rule under each line (through its x-height band's bottom, as a writer keeps to it)
    and a red margin rule down the left, just before the lines' first words.
    Returns (BGR uint8 page, [{"box": [x, y, w, h], "text", "line"}, ...]): the true box of each
    word is the bounding box of its own ink on the final page."""
    one_band = len({image.shape[0] for line in lines for image, _ in line}) == 1
    masks = [[(*word_ink(image, one_band), text) for image, text in line] for line in lines]
    masks = [[word for word in line if word[0] is not None] for line in masks]
    word_height = float(np.percentile([mask.shape[0] for line in masks for mask, _, _ in line], 90))
    pitch = word_height * (line_pitch if line_pitch is not None else rng.uniform(0.8, 0.95))
    angle = rng.uniform(-2, 2) if angle is None else angle
    margin = int(word_height)
    placed, ink = lay_out(masks, rng, word_height, pitch, gaps, margin, one_band)
    rules = rule_layers(placed, ink.shape, word_height, margin) if ruled else []
    rotation, (ink, *rules) = rotate(angle, ink, *rules)
    return photograph(ink, rules, rng, jpeg_quality), true_boxes(placed, rotation)


def word_ink(image, one_band):
    """A word image's ink (Otsu's threshold) cropped to it, and the row of the word's centre in that
    crop: the image's middle where the dataset cut every word to its line's band, else the ink's
    median row. (None, 0) for an image without ink."""
    mask = cv2.threshold(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)[1] > 0
    rows, columns = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(rows) == 0:
        return None, 0
    centre = image.shape[0] / 2 if one_band else np.median(np.nonzero(mask)[0])
    return mask[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1], centre - rows[0]


def lay_out(masks, rng, word_height, pitch, gaps, margin, one_band):
    """The words' ink placed in lines on an upright page: ([(ink mask, left, top, text, line number), ...],
    the page's ink as float32 in [0, 1])."""
    placed, width = [], 0
    for number, line in enumerate(masks):
        x, centre = margin, margin + word_height / 2 + number * pitch
        for mask, mask_centre, text in line:
            top = max(0, int(round(centre - mask_centre + (0 if one_band else rng.normal(0, 0.03 * word_height)))))
            placed.append((mask, x, top, text, number))
            x += mask.shape[1] + int(rng.uniform(*gaps) * word_height)
        width = max(width, x)
    height = max(top + mask.shape[0] for mask, _, top, _, _ in placed) + margin
    ink = np.zeros((height, width + margin), np.float32)
    for mask, left, top, _, _ in placed:
        region = ink[top:top + mask.shape[0], left:left + mask.shape[1]]
        np.maximum(region, mask, out=region)
    return placed, ink


def rule_layers(placed, shape, word_height, margin):
    """Ruled paper's two layers: the blue rules under the lines that have words, the red margin rule."""
    rules = np.zeros((2, *shape), np.float32)
    thickness = max(2, round(word_height / 50))
    for number in {line for _, _, _, _, line in placed}:
        rows = np.concatenate([top + np.nonzero(mask)[0] for mask, _, top, _, line in placed if line == number])
        baseline = int(round(np.percentile(rows, 75)))
        cv2.line(rules[0], (0, baseline), (shape[1] - 1, baseline), 1.0, thickness)
    cv2.line(rules[1], (margin - margin // 8, 0), (margin - margin // 8, shape[0] - 1), 1.0, thickness)
    return rules


def rotate(angle, *layers):
    """(the 2x3 rotation matrix, the layers softened and rotated by `angle` degrees about their centre,
    onto a canvas that keeps every corner)."""
    height, width = layers[0].shape
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    out_w, out_h = int(np.ceil(width * cos + height * sin)), int(np.ceil(width * sin + height * cos))
    rotation[:, 2] += (out_w - width) / 2, (out_h - height) / 2
    return rotation, [cv2.warpAffine(cv2.GaussianBlur(layer, (0, 0), 0.7), rotation, (out_w, out_h), flags=cv2.INTER_LINEAR)
                      for layer in layers]


def true_boxes(placed, rotation):
    """Each placed word's truth: the bounding box of its own ink after the rotation, its text and line."""
    truth = []
    for mask, left, top, text, number in placed:
        ys, xs = np.nonzero(mask)
        x, y = rotation @ np.stack([xs + left + 0.5, ys + top + 0.5, np.ones(len(xs))])
        x0, y0 = int(np.floor(x.min() - 0.5)), int(np.floor(y.min() - 0.5))
        truth.append({"box": [x0, y0, int(np.ceil(x.max() + 0.5)) - x0, int(np.ceil(y.max() + 0.5)) - y0],
                      "text": text, "line": number})
    return truth


def photograph(ink, rules, rng, jpeg_quality):
    """The ink (and rules) on toned paper in one ink colour, lit by a lamp, with noise: a BGR uint8 page."""
    out_h, out_w = ink.shape
    level = rng.uniform(190, 245)
    paper = np.array([level - rng.uniform(10, 45), level - rng.uniform(0, 15), level])  # BGR: white, cream or yellowed
    ink_colour = rng.uniform([30, 20, 10], [110, 80, 70])
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    lamp_x, lamp_y = rng.uniform(0, out_w), rng.uniform(0, out_h)
    light = 1 - rng.uniform(0.2, 0.4) * np.hypot(xx - lamp_x, yy - lamp_y) / np.hypot(out_w, out_h)
    for rule, colour in zip(rules, ((215, 170, 120), (120, 120, 215))):
        paper = paper * (1 - rule[..., None]) + np.array(colour, np.float32) * rule[..., None]
    page = (paper * (1 - ink[..., None]) + ink_colour * ink[..., None]) * light[..., None]
    page = np.clip(np.round(page + rng.normal(0, rng.uniform(3, 8), page.shape)), 0, 255).astype(np.uint8)
    if jpeg_quality:
        page = cv2.imdecode(cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])[1], cv2.IMREAD_COLOR)
    return page


def box_overlap(a, b):
    """The area two boxes [x, y, w, h] share."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0, width) * max(0, height)


def box_iou(a, b):
    overlap = box_overlap(a, b)
    return overlap / (a[2] * a[3] + b[2] * b[3] - overlap)


def matched_boxes(found, true, threshold=0.5):
    """How many found boxes match a true box one-to-one at IoU >= threshold (best pairs first)."""
    pairs = sorted(((box_iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(true)), reverse=True)
    used_found, used_true = set(), set()
    for iou, i, j in pairs:
        if iou < threshold:
            break
        if i not in used_found and j not in used_true:
            used_found.add(i)
            used_true.add(j)
    return len(used_found)


def page_text(lines):
    """Lines of words -> the page's text, whitespace normalised: words joined by single spaces, lines by newlines."""
    return "\n".join(" ".join(word for word in line if word) for line in lines).strip()
