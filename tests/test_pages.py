"""Reading whole lines and pages: segmentation.py on pages composed from real word images (demo set,
gw_words when present), read_page and inferenceModel.py --page on a real (tiny) trained model, bad
images, and a short benchmarks.quality pages run."""
import json
import os
import re

import cv2
import numpy as np
import pytest

from htr.pages.compose import box_iou, compose_page, dataset_lines, matched_boxes
from conftest import GW_WORDS, run_script
from htr.images import UnreadableImage, read_image
from htr.recognizer import ImageToWordModel
from htr.pages.segmentation import binarize, find_words, flatten, make_word, reading_images

# The demo script's x-height is about half its words' ink height (gw_words': a third), so its natural
# word gaps (1-2 x-heights) and line pitch (3 x-heights) are larger in compose_page's units.
DEMO_GAPS, DEMO_PITCH = (0.6, 0.9), 1.3


@pytest.fixture(scope="module")
def demo_lines(demo_dir):
    """Three source lines of up to twelve demo-set words (about 1500 pixels wide), as (BGR image, text)."""
    page = dataset_lines(demo_dir)[0]
    return [[(read_image(path), text) for path, text in line[:12]] for line in page[:3]]


def found_boxes(lines):
    return [word.box for line in lines for word in line]


def assert_read_like_truth(lines, truth, n_lines):
    """Every line found, nearly every word's box (IoU >= 0.5), the words in reading order, each in its own line."""
    assert len(lines) == n_lines
    assert matched_boxes(found_boxes(lines), [word["box"] for word in truth]) >= 0.9 * len(truth)
    matched = []  # (found line, index of the true word it is), in reading order
    for number, line in enumerate(lines):
        for word in line:
            best = max(range(len(truth)), key=lambda index: box_iou(word.box, truth[index]["box"]))
            if box_iou(word.box, truth[best]["box"]) >= 0.5:
                matched.append((number, best))
    assert [index for _, index in matched] == sorted(index for _, index in matched)
    assert all(truth[index]["line"] == number for number, index in matched)


@pytest.mark.parametrize("angle, jpeg", [(0.0, None), (2.0, None), (-2.0, 70)])
def test_composed_page_lines_words_and_order(demo_lines, angle, jpeg):
    page, truth = compose_page(demo_lines, np.random.default_rng(0), angle=angle, line_pitch=DEMO_PITCH, gaps=DEMO_GAPS,
                               jpeg_quality=jpeg)
    assert_read_like_truth(find_words(page), truth, 3)


def test_touching_lines_are_cut_apart(demo_lines):
    """Strokes drawn from words of the first line down into words of the second (descenders that touch
    the ascenders below) make single ink components spanning two lines; the lines still come apart."""
    page, truth = compose_page(demo_lines, np.random.default_rng(1), angle=0.0, line_pitch=DEMO_PITCH, gaps=DEMO_GAPS)
    upper = [word["box"] for word in truth if word["line"] == 0]
    lower = [word["box"] for word in truth if word["line"] == 1]
    pen = max(2, round(0.08 * np.median([box[3] for box in upper])))
    touching = 0
    for a in upper:
        for b in lower:
            left, right = max(a[0], b[0]) + pen, min(a[0] + a[2], b[0] + b[2]) - pen
            if right > left:
                x = (left + right) // 2
                cv2.line(page, (x, a[1] + a[3] - 2 * pen), (x, b[1] + 2 * pen), (40, 30, 20), pen)
                touching += 1
    assert touching >= 3
    ink = binarize(flatten(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY)))
    _, components = cv2.connectedComponents(ink.astype(np.uint8))
    first = set(np.unique(components[upper[0][1]:upper[0][1] + upper[0][3] // 2]))
    second = set(np.unique(components[lower[0][1] + lower[0][3] // 2:lower[0][1] + lower[0][3]]))
    assert len((first & second) - {0}) >= 1, "the drawn strokes should join the two lines' ink"
    assert_read_like_truth(find_words(page), truth, 3)


def test_strokes_between_lines_stay_whole_with_their_own_words(demo_lines):
    """Between two lines: a descender and an ascender that pass each other and touch half way, and an
    ascender whose tip binarisation sees as a piece of its own, nearer the line above. Each stroke
    stays whole with the word it belongs to: the words' boxes reach the tips. (Cutting at one row
    took the tips off both touching strokes; the nearest line core took the lone tip.)"""
    page, truth = compose_page(demo_lines[:2], np.random.default_rng(1), angle=0.0, line_pitch=DEMO_PITCH, gaps=DEMO_GAPS)
    upper = [word["box"] for word in truth if word["line"] == 0]
    lower = [word["box"] for word in truth if word["line"] == 1]
    pen = max(2, round(0.08 * np.median([box[3] for box in upper])))
    pairs = [(a, b) for a in upper for b in lower
             if min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]) > 12 * pen]  # words one above the other
    (a, b), (c, d) = pairs[0], pairs[-1]
    colour = (40, 30, 20)

    def middle(box):
        return box[1] + box[3] // 2

    x = max(a[0], b[0]) + 4 * pen
    top, bottom = middle(a), middle(b)
    descender_tip, ascender_tip = top + 3 * (bottom - top) // 5, top + 2 * (bottom - top) // 5  # short of the cores
    cv2.line(page, (x, top), (x, descender_tip), colour, pen)
    cv2.line(page, (x + 4 * pen, bottom), (x + 4 * pen, ascender_tip), colour, pen)
    cv2.line(page, (x, (top + bottom) // 2), (x + 4 * pen, (top + bottom) // 2), colour, pen)

    x = max(c[0], d[0]) + 4 * pen
    top, bottom = middle(c), middle(d)
    piece_top, piece_bottom = top + 2 * (bottom - top) // 5, (top + bottom) // 2 - pen
    cv2.line(page, (x, bottom), (x, piece_bottom + 2 * pen), colour, pen)
    cv2.line(page, (x, piece_bottom), (x, piece_top), colour, pen)
    _, components = cv2.connectedComponents(binarize(flatten(cv2.cvtColor(page, cv2.COLOR_BGR2GRAY))).astype(np.uint8))
    assert components[piece_top + pen, x] != components[piece_bottom + 3 * pen, x], "the tip should be a piece of its own"

    boxes = found_boxes(find_words(page))

    def found(box):
        return max(boxes, key=lambda other: box_iou(other, box))
    assert found(a)[1] + found(a)[3] >= descender_tip - pen, "the descender lost its tip"
    assert found(b)[1] <= ascender_tip + pen, "the ascender lost its tip"
    assert found(d)[1] <= piece_top + pen, "the ascender's lone tip went to the line above"


def test_a_word_keeps_the_ink_nobody_owns_but_not_other_words():
    """make_word on a drawn page: the word's own strokes and a faint mark in its box that binarisation
    gave to no word are kept; a stroke of another word reaching into its box is not."""
    darkness = np.zeros((60, 100), np.float32)
    darkness[20:40, 10:60] = 0.9  # the word's strokes: a block and a tall stroke at the right
    darkness[5:50, 90:92] = 0.9
    darkness[5:15, 70:72] = 0.8  # the next line's ascender, inside the word's box
    darkness[44:47, 30:33] = 0.12  # too faint to be ink
    owner = np.zeros(darkness.shape, np.float32)
    owner[20:40, 10:60] = owner[5:50, 90:92] = 1
    owner[5:15, 70:72] = 2
    ys, xs = np.nonzero(owner == 1)
    identity = np.array([[1, 0, 0], [0, 1, 0]], np.float64)
    word = make_word((xs, ys, xs.astype(float), ys.astype(float)), 1, (25.0, 35.0), darkness, owner, identity, pen=2)
    assert word.box == [10, 5, 82, 45]
    ink = word.ink  # from column 10, row 5
    assert ink[20 - 5:40 - 5, 10 - 10:60 - 10].min() == pytest.approx(0.9)
    assert ink[44 - 5:47 - 5, 30 - 10:33 - 10].min() == pytest.approx(0.12)
    assert ink[0:15 - 5, 70 - 10:72 - 10].max() == 0


def rule_lines(page, truth, darkening):
    """The page with a straight rule under each line's letters (through the bottom of its x-height band,
    as writers keep to ruled paper or a form's lines), 3 pixels thick, darkening the page under it by
    `darkening` (per B, G, R channel), so the rule is as faint or as dark on a shaded page as on a lit one."""
    rules = np.zeros(page.shape[:2], np.float32)
    for number in sorted({word["line"] for word in truth}):
        y = int(np.median([word["box"][1] + 0.75 * word["box"][3] for word in truth if word["line"] == number]))
        cv2.line(rules, (0, y), (page.shape[1] - 1, y), 1.0, 3)
    return np.round(page * (1 - rules[..., None] * np.array(darkening))).astype(np.uint8)


@pytest.mark.parametrize("darkening", [(0.05, 0.25, 0.45), (0.85, 0.85, 0.85)], ids=["notebook", "form"])
def test_ruled_paper(demo_lines, darkening):
    """Words written on rules (a notebook's light blue ones, a form's black ones) are found as on bare
    paper; a faint rule is gone from the words' images (a dark one stays where letters touch it)."""
    page, truth = compose_page(demo_lines, np.random.default_rng(3), angle=0.0, line_pitch=DEMO_PITCH, gaps=DEMO_GAPS)
    ruled = find_words(rule_lines(page, truth, darkening))
    assert_read_like_truth(ruled, truth, 3)
    if darkening[0] > 0.5:
        return
    differences = []  # how far each word's image is from the same word's on bare paper
    for word in (word for line in find_words(page) for word in line):
        same = max((other for line in ruled for other in line), key=lambda other: box_iou(other.box, word.box))
        if same.ink.shape == word.ink.shape:
            differences.append(np.abs(same.ink - word.ink).sum() / word.ink.sum())
    assert len(differences) >= 8 and np.mean(differences) < 0.07  # with the rules left in: 0.11


def test_words_are_read_in_the_pages_shades_of_grey(demo_lines):
    """reading_images shows each word as the page has it, soft stroke edges and all, on white paper:
    not thresholded to black and white, which reads worse."""
    page, _ = compose_page(demo_lines, np.random.default_rng(2), angle=1.0, line_pitch=DEMO_PITCH, gaps=DEMO_GAPS)
    for word in [line[0] for line in find_words(page)]:
        for cut in reading_images(word):
            grey = cut[:, :, 0]
            assert grey[0].min() == 255 and grey[-1].min() == 255  # white margins
            assert grey.min() < 100  # the strokes' dark middle
            assert ((grey > 20) & (grey < 235)).sum() > 0.2 * (grey < 128).sum()  # their soft edges


def test_boxes_are_in_input_pixels_at_any_resolution(demo_lines):
    """The same page at half and double size: the boxes scale with it (sizes are measured on the page)."""
    page, truth = compose_page(demo_lines[:2], np.random.default_rng(2), angle=1.0, line_pitch=DEMO_PITCH, gaps=DEMO_GAPS)
    for scale in (0.5, 2.0):
        resized = cv2.resize(page, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        scaled_truth = [{**word, "box": [round(v * scale) for v in word["box"]]} for word in truth]
        assert_read_like_truth(find_words(resized), scaled_truth, 2)


@pytest.mark.skipif(not os.path.isdir(GW_WORDS), reason="gw_words not in ../shared/data")
def test_gw_words_pages():
    """Two pages of real handwriting from the validation split, lines close enough that some touch."""
    pages = dataset_lines(GW_WORDS, "valid")
    rng = np.random.default_rng(3)
    found = true = hits = 0
    for index in range(2):
        lines = [[(read_image(path), text) for path, text in line] for line in pages[index][:6]]
        page, truth = compose_page(lines, rng, jpeg_quality=80 if index else None)
        boxes = found_boxes(find_words(page))
        hits, found, true = hits + matched_boxes(boxes, [word["box"] for word in truth]), found + len(boxes), true + len(truth)
    assert 2 * hits / (found + true) >= 0.9


@pytest.mark.slow
def test_read_page_structure_and_single_words(trained_model_dir, demo_lines, monkeypatch):
    """read_page's result has the agreed shape; the page's text is its lines' words in order; each
    word, cut from the page around its box and read on its own, is one word in the same place."""
    import htr.pages.reading

    monkeypatch.setattr(htr.pages.reading, "PAGE_BATCH", 4)  # several model calls per page
    model = ImageToWordModel(trained_model_dir)
    page, truth = compose_page(demo_lines, np.random.default_rng(4), angle=1.5, line_pitch=DEMO_PITCH, gaps=DEMO_GAPS)
    result = model.read_page(page)
    assert set(result) == {"words", "lines", "text"} and len(result["lines"]) == 3
    assert matched_boxes([word["box"] for word in result["words"]], [word["box"] for word in truth]) >= 0.9 * len(truth)
    for word in result["words"]:
        assert set(word) == {"box", "text", "confidence", "line"} and 0 <= word["confidence"] <= 1
        assert all(isinstance(v, int) for v in word["box"]) and isinstance(word["text"], str)
    assert [word["line"] for word in result["words"]] == sorted(word["line"] for word in result["words"])
    assert result["text"] == "\n".join(line["text"] for line in result["lines"])
    for number, line in enumerate(result["lines"]):
        assert line["text"] == " ".join(w["text"] for w in result["words"] if w["line"] == number and w["text"])

    for word in result["words"][:5]:  # a single word is a page of one word, read as on the page or as predict reads it
        x, y, w, h = word["box"]
        crop = page[max(0, y - 3):y + h + 3, max(0, x - 3):x + w + 3]
        alone = model.read_page(crop)
        assert len(alone["words"]) == 1 and alone["text"] == alone["words"][0]["text"]
        assert box_iou(alone["words"][0]["box"], [x - max(0, x - 3), y - max(0, y - 3), w, h]) >= 0.9
        assert alone["text"] in (word["text"], model.predict(crop)[0])


@pytest.mark.slow
def test_bad_images(trained_model_dir):
    model = ImageToWordModel(trained_model_dir)
    for image, reason in [(np.zeros((0, 0, 3), np.uint8), "empty"), (np.full((200, 300, 3), 255, np.uint8), "blank"),
                          (np.zeros((5, 400, 3), np.uint8), "too small"),
                          (np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (9000, 6000, 3)), "too large")]:
        with pytest.raises(UnreadableImage, match=reason):
            model.read_page(image)
    rng = np.random.default_rng(0)
    paper = np.clip(215 + rng.normal(0, 6, (400, 600, 3)) + np.linspace(-30, 30, 600)[None, :, None], 0, 255)
    assert model.read_page(paper.astype(np.uint8)) == {"words": [], "lines": [], "text": ""}


@pytest.mark.slow
def test_page_command(trained_model_dir, demo_lines, tmp_path):
    page, truth = compose_page(demo_lines[:2], np.random.default_rng(5), line_pitch=DEMO_PITCH, gaps=DEMO_GAPS)
    cv2.imwrite(str(tmp_path / "letter.jpg"), page)
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "paper.png"), np.clip(220 + rng.normal(0, 5, (300, 400)), 0, 255).astype(np.uint8))
    cv2.imwrite(str(tmp_path / "white.png"), np.full((300, 400), 255, np.uint8))
    (tmp_path / "notes.png").write_text("not a picture")
    out = tmp_path / "out"
    result = run_script("inferenceModel.py", "--model", trained_model_dir, "--page", tmp_path / "letter.jpg",
                        tmp_path / "paper.png", tmp_path / "white.png", tmp_path / "notes.png", "--output-dir", out, "--preview")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(("skipped", "error"))]
    assert errors == [f"skipped {tmp_path / 'white.png'}: blank (one flat colour): there is nothing to read",
                      f"skipped {tmp_path / 'notes.png'}: not an image file OpenCV can read",
                      "error: 2 of 4 images could not be read (listed above)"]
    with open(out / "letter.json", encoding="utf-8") as f:
        letter = json.load(f)
    assert letter["image"] == str(tmp_path / "letter.jpg") and len(letter["lines"]) == 2
    assert matched_boxes([word["box"] for word in letter["words"]], [word["box"] for word in truth]) >= 0.9 * len(truth)
    with open(out / "paper.json", encoding="utf-8") as f:
        assert json.load(f) == {"image": str(tmp_path / "paper.png"), "words": [], "lines": [], "text": ""}
    assert "(no writing found)" in result.stdout
    preview = cv2.imread(str(out / "letter.preview.png"))
    assert preview.shape == page.shape and np.abs(preview.astype(int) - page).max() > 100  # boxes drawn on the page
    assert sorted(os.listdir(out)) == ["letter.json", "letter.preview.png", "paper.json", "paper.preview.png"]

    refused = run_script("inferenceModel.py", "--model", trained_model_dir, "--page", tmp_path / "letter.jpg")
    assert refused.returncode == 2 and "--page needs --output-dir" in refused.stderr


@pytest.mark.slow
def test_bench_pages(trained_model_dir, demo_dir):
    result = run_script("benchmarks.quality", "pages", "--model", trained_model_dir, "--data-dir", demo_dir, "--pages", 2, "--lines", 3)
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"precision [\d.]+, recall [\d.]+, F1 [\d.]+", result.stdout)
    assert re.search(r"page CER [\d.]+% against [\d.]+% for the same words cropped by hand", result.stdout)
    assert re.fullmatch(r"  [\d.]+ pages/s", result.stdout.splitlines()[-1])
