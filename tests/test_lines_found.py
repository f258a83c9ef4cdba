"""find_text_lines (htr/pages/lines.py) on pages that look scanned: a page drawn here with the demo
set's pen (a dark page edge, a rule, a header in bigger writing, lines whose strokes touch, a skew),
bare paper, and, where the research data is at hand, a George Washington page."""
import json
import os

import cv2
import numpy as np
import pytest

from conftest import REPO
from htr.data.demo import load_vocabulary, random_writer_style, render_line
from htr.pages.compose import box_iou, matched_boxes
from htr.pages.lines import find_text_lines

GW_PAGES = os.path.join(REPO, "..", "shared", "data", "gw_pages")


def ink_layer(words, style, rng):
    """One line of handwriting in `style`: its darkness (float, 0 paper, 1 black) cut to its ink."""
    image, _, _ = render_line(words, style, rng)
    darkness = np.clip((np.median(image) - image.astype(np.float32)) / np.median(image), 0, 1)
    rows, columns = np.nonzero(darkness > 0.25)
    return darkness[rows.min():rows.max() + 1, columns.min():columns.max() + 1]


def scanned_page(rng, skew=1.5):
    """A grey page of handwriting as a scanner sees it, and the true box of each line: a header in
    writing 1.6 times bigger, a rule under it, eight lines close enough that ascenders and
    descenders touch, all rotated by `skew` degrees; then toned, unevenly lit paper, noise, and
    the black of the scanner's lid along the left edge and the bottom."""
    vocabulary = [word for word in load_vocabulary() if len(word) >= 3 and word.isalpha()]
    style = {**random_writer_style(rng, []), "x_height": 16.0, "cursive": True, "slant": 0.2, "thickness": 0.14}
    width, height = 1300, 1000
    layers = []  # (darkness placed on the page, is a line of writing)
    y = 60
    for size in [1.6] + [1.0] * 8:
        words = list(rng.choice(vocabulary, 10 if size == 1 else 4))
        ink = ink_layer(words, {**style, "x_height": style["x_height"] * size}, rng)[:, :width - 220]
        layer = np.zeros((height, width), np.float32)
        layer[y:y + ink.shape[0], 150:150 + ink.shape[1]] = ink
        layers.append((layer, True))
        y += ink.shape[0] + 25 if size > 1 else round(0.85 * ink.shape[0])
        if size > 1:
            rule = np.zeros((height, width), np.float32)
            rule[y - 12:y - 10, 100:width - 100] = 0.6
            layers.append((rule, False))
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), skew, 1.0)
    layers = [(cv2.warpAffine(layer, rotation, (width, height)), writing) for layer, writing in layers]
    truth = [list(cv2.boundingRect((layer > 0.25).astype(np.uint8))) for layer, writing in layers if writing]
    darkness = np.max([layer for layer, _ in layers], axis=0)
    return paper(rng, width, height) * (1 - 0.85 * darkness), truth


def paper(rng, width, height, edge=True):
    """Toned paper under a light brighter on the right, with noise, and where `edge`, the black of
    the scanner's lid beyond the left and bottom edges of the page (float grey levels)."""
    light = np.linspace(170, 215, width, dtype=np.float32)[None, :] * np.ones((height, 1), np.float32)
    page = light + rng.normal(0, 4, (height, width)).astype(np.float32)
    if edge:
        page[:, :40] = 25
        page[-30:, :] = 25
    return page


def as_bgr(grey):
    return cv2.cvtColor(np.clip(grey, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


@pytest.mark.parametrize("skew", [0.0, 1.5, -2.0])
def test_every_line_is_found_and_nothing_on_the_edge_or_the_rule(skew):
    page, truth = scanned_page(np.random.default_rng(7), skew)
    lines = find_text_lines(as_bgr(page))
    boxes = [line["box"] for line in lines]
    assert matched_boxes(boxes, truth) == len(truth) == len(boxes), (boxes, truth)
    centres = [np.median([y for _, y in line["baseline"]]) for line in lines]
    assert centres == sorted(centres)  # top to bottom
    for line, box in zip(lines, boxes):
        x, y, w, h = box
        assert all(x - 2 <= px <= x + w + 2 and y - 2 <= py <= y + h + 2 for px, py in line["polygon"] + line["baseline"])


def test_a_bigger_page_gives_the_same_lines_in_its_own_pixels():
    page, truth = scanned_page(np.random.default_rng(8))
    double = cv2.resize(as_bgr(page), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    boxes = [line["box"] for line in find_text_lines(double)]
    assert matched_boxes(boxes, [[2 * value for value in box] for box in truth]) == len(truth) == len(boxes)


@pytest.mark.parametrize("edge", [False, True])
def test_bare_paper_has_no_lines(edge):
    assert find_text_lines(as_bgr(paper(np.random.default_rng(0), 1300, 1000, edge))) == []


def george_washington_lines(page):
    """The true line boxes of a gw_pages page: its words' boxes joined by line."""
    with open(os.path.join(GW_PAGES, f"{page}.json"), encoding="utf-8") as f:
        words = json.load(f)["words"]
    truth = []
    for number in sorted({word["line"] for word in words}):
        boxes = np.array([word["box"] for word in words if word["line"] == number])
        left, top = boxes[:, :2].min(axis=0)
        right, bottom = (boxes[:, :2] + boxes[:, 2:]).max(axis=0)
        truth.append([left, top, right - left, bottom - top])
    return truth


@pytest.mark.skipif(not os.path.isdir(GW_PAGES), reason="the research data (gw_pages) is not here")
def test_george_washington_page_300():
    truth = george_washington_lines(300)
    boxes = [line["box"] for line in find_text_lines(cv2.imread(os.path.join(GW_PAGES, "images", "300.jpg")))]
    hits = matched_boxes(boxes, truth)
    assert 2 * hits / (len(boxes) + len(truth)) >= 0.95, (len(boxes), len(truth), hits)
    assert box_iou(boxes[0], truth[0]) >= 0.5  # the header with the page number comes first


def test_a_one_word_line_of_its_own_is_found():
    """A closing word ("Kindly") alone on its rows between lines of writing is a line, though narrower
    than two line heights (a stamp or a number beside the text is not)."""
    rng = np.random.default_rng(3)
    style = {**random_writer_style(rng, []), "x_height": 16.0, "cursive": True, "slant": 0.2, "thickness": 0.14}
    page, truth, y = paper(rng, 1300, 1000, edge=False), [], 80
    for words in [["letter", "sent", "to", "the", "governor", "of", "the", "colony", "this", "week"]] * 3 + [["Kindly"]] \
            + [["you", "are", "to", "take", "up", "for", "that", "purpose", "forty", "coats"]] * 3:
        ink = ink_layer(words, style, rng)[:, :1000]
        page[y:y + ink.shape[0], 150:150 + ink.shape[1]] *= 1 - 0.85 * ink
        truth.append([150, y, ink.shape[1], ink.shape[0]])
        y += ink.shape[0] + 30
    assert truth[3][2] < 2 * np.median([box[3] for box in truth])  # narrower than two line heights
    boxes = [line["box"] for line in find_text_lines(as_bgr(page))]
    assert matched_boxes(boxes, truth) == len(truth) == len(boxes), (boxes, truth)



@pytest.mark.skipif(not os.path.isdir(GW_PAGES), reason="the research data (gw_pages) is not here")
def test_an_underline_between_lines_is_no_line():
    """George Washington page 271 has a long underline between two lines: a ridge of its own, and
    a few pixels of the strokes it touches make its box as tall as a line's, but its ink is one
    stroke: every line found there is a true line, and every true line is found."""
    truth = george_washington_lines(271)
    boxes = [line["box"] for line in find_text_lines(cv2.imread(os.path.join(GW_PAGES, "images", "271.jpg")))]
    assert matched_boxes(boxes, truth) == len(truth) == len(boxes), (len(boxes), len(truth))


def test_a_line_begun_in_a_fainter_ink_is_found_whole():
    """A line whose first words are in a lighter ink than the rest (the pen running dry, a second
    ink) is found from its first word: its faint ink is still ink."""
    rng = np.random.default_rng(4)
    style = {**random_writer_style(rng, []), "x_height": 16.0, "cursive": True, "slant": 0.2, "thickness": 0.14}
    page, truth, y = paper(rng, 1300, 1000, edge=False), [], 80
    for number in range(7):
        ink = ink_layer(list(rng.choice(["what", "they", "receive", "will", "also", "forty", "thirty"], 9)), style, rng)[:, :1000]
        strength = np.full(ink.shape[1], 0.85, np.float32)
        if number == 3:
            strength[:ink.shape[1] // 2] = 0.3
        page[y:y + ink.shape[0], 150:150 + ink.shape[1]] *= 1 - strength * ink
        truth.append([150, y, ink.shape[1], ink.shape[0]])
        y += ink.shape[0] + 40
    boxes = [line["box"] for line in find_text_lines(as_bgr(page))]
    assert matched_boxes(boxes, truth) == len(truth) == len(boxes), (boxes, truth)
    assert min(abs(box[0] - 150) for box in boxes) <= 4 and max(abs(box[0] - 150) for box in boxes) <= 10


def test_a_word_touching_a_column_rule_stays_in_its_line():
    """The last word of a line squeezed against the column's rule (a vertical line down the page)
    touches it: the rule goes, the word stays in its line's box."""
    rng = np.random.default_rng(6)
    style = {**random_writer_style(rng, []), "x_height": 16.0, "cursive": True, "slant": 0.2, "thickness": 0.14}
    page, truth, y = paper(rng, 1300, 1000, edge=False), [], 80
    for number in range(7):
        ink = ink_layer(list(rng.choice(["what", "they", "receive", "will", "also", "forty", "thirty"], 9)), style, rng)[:, :1000]
        page[y:y + ink.shape[0], 150:150 + ink.shape[1]] *= 1 - 0.85 * ink
        truth.append([150, y, ink.shape[1], ink.shape[0]])
        y += ink.shape[0] + 40
    rule = 150 + truth[3][2]
    assert (page[truth[3][1]:truth[3][1] + truth[3][3], rule - 1] < 150).any()  # the fourth line's last stroke touches it
    page[40:960, rule:rule + 4] = 30
    boxes = [line["box"] for line in find_text_lines(as_bgr(page))]
    assert matched_boxes(boxes, truth) == len(truth) == len(boxes), (boxes, truth)
    fourth = max(boxes, key=lambda box: box_iou(box, truth[3]))
    assert fourth[0] + fourth[2] >= rule - 8, (fourth, rule)
