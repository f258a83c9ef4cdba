"""The trained line finder (htr/pages/line_finder.py, htr/pages/train_line_finder.py): lines from
the network's maps (drawn here: lines across, one upright, a speck), the training targets of a
page's lines, and a tiny network trained for real on pages drawn here, exported to ONNX and run
with onnxruntime."""
import cv2
import numpy as np
import pytest

from htr.pages.compose import matched_boxes
from htr.pages.line_finder import (classical_agrees, find_lines_with_model, line_cores, lines_from_maps, lines_missed,
                                   load_line_finder)
from htr.pages.train_line_finder import SETTINGS, load_pages, targets, train


def drawn_maps():
    """Core and region masks of three lines across (touching regions), one upright in the left
    margin and a speck of core; and the true boxes at the working size."""
    core, region = np.zeros((400, 300), bool), np.zeros((400, 300), bool)
    truth = []
    for top in (100, 120, 140):
        region[top:top + 20, 60:280] = True
        core[top + 8:top + 14, 60:280] = True
        truth.append([60, top, 220, 20])
    region[150:350, 10:30] = True
    core[150:350, 17:23] = True
    truth.append([10, 150, 20, 200])
    core[380:382, 200:202] = True
    return core, region, truth


def test_each_core_is_a_line_with_the_region_nearest_it():
    core, region, truth = drawn_maps()
    lines = lines_from_maps(line_cores(core), region, (2.0, 3.0))
    boxes = [line["box"] for line in lines]
    page_truth = [[x * 2, y * 3, w * 2, h * 3] for x, y, w, h in truth]
    assert len(lines) == 4 and matched_boxes(boxes, page_truth) == 4, boxes  # the speck is no line
    assert [box[1] for box in boxes] == sorted(box[1] for box in boxes)  # top to bottom
    across = [line for line in lines if line["box"][2] > line["box"][3]]
    for line in across:  # the baseline at the bottom of the core, inside the box
        assert all(abs(y - (line["box"][1] + 14 * 3)) <= 3 for _, y in line["baseline"]), line["baseline"]
        x, y, w, h = line["box"]
        assert all(x - 2 <= px <= x + w + 2 and y - 2 <= py <= y + h + 2 for px, py in line["polygon"])
    upright = [line for line in lines if line["box"][3] > line["box"][2]][0]
    assert upright["baseline"][0][1] > upright["baseline"][-1][1]  # read bottom to top


def test_nothing_marked_no_lines():
    assert lines_from_maps(np.zeros((50, 50), bool), np.ones((50, 50), bool), (1.0, 1.0)) == []


def test_classical_lines_agree_where_each_holds_one_core_and_they_hold_the_cores():
    core, region, truth = drawn_maps()
    cores = line_cores(core)
    lines = [{"box": box} for box in truth]
    assert classical_agrees(lines, cores, (1.0, 1.0))
    assert not classical_agrees(lines[1:], cores, (1.0, 1.0))  # a line the network sees is missing
    joined = [{"box": [10, 100, 270, 20]}] + lines[1:]  # the margin note joined to the line beside it
    core[100:108, 12:52] = True
    assert not classical_agrees(joined, line_cores(core), (1.0, 1.0))
    assert not classical_agrees([], cores, (1.0, 1.0))


def test_the_network_adds_only_the_lines_the_classical_finder_missed():
    across = [{"box": [60, top, 220, 20]} for top in (100, 120, 140, 160)]
    note = {"box": [10, 150, 20, 200]}  # upright in the margin: no classical line near it
    network = [{"box": [62, 101, 215, 19]},  # the first line again (IoU >= 0.5)
               {"box": [60, 120, 220, 40]},  # the second and third joined: it holds both
               {"box": [20, 150, 280, 50]},  # a loose box around the fourth (IoU 0.31): it holds it
               note]
    assert lines_missed(network, across) == [note]
    assert lines_missed(network, []) == network


def test_targets_give_each_line_a_core_apart_and_its_region():
    polygons = [np.array([[20, y], [180, y], [180, y + 30], [20, y + 30]], float) for y in (20, 50)]
    lines = [(polygon, np.array([[20, polygon[0, 1] + 24], [180, polygon[0, 1] + 24]])) for polygon in polygons]
    core, region = targets((100, 200), lines, np.array([1.0, 1.0]))
    assert region[20:80, 20:180].all() and not region[85:].any()
    count, _ = cv2.connectedComponents(core)
    assert count - 1 == 2  # two cores, apart although the regions touch
    rows = np.nonzero(core[:, 100])[0]
    assert 30 < rows.min() and rows.max() < 45 + 30  # above each baseline, in the x-height band


def drawn_page(rng, tops):
    """A grey page (white, 640 px tall) with dark bars of writing-like strokes on lines at `tops`,
    and each line's (polygon, baseline)."""
    page = np.full((640, 480), 230, np.uint8)
    lines = []
    for top in tops:
        x = 40
        while x < 420:
            width = int(rng.integers(20, 60))
            cv2.rectangle(page, (x, top + 6), (x + width, top + 16), 40, -1)
            cv2.line(page, (x + 3, top), (x + 3, top + 16), 40, 2)
            x += width + int(rng.integers(8, 16))
        lines.append((np.array([[40, top], [x, top], [x, top + 22], [40, top + 22]], float),
                      np.array([[40, top + 16], [x, top + 16]], float)))
    return page, lines


@pytest.mark.slow
def test_a_tiny_finder_trained_for_real_finds_the_lines_of_a_drawn_page(tmp_path, monkeypatch):
    monkeypatch.setitem(SETTINGS, "widths", (8, 8, 16, 16))
    monkeypatch.setitem(SETTINGS, "learning_rate", 1e-2)
    rng = np.random.default_rng(0)
    pages = []
    for number, tops in enumerate([range(60, 600, 50), range(80, 600, 60)]):
        page, lines = drawn_page(rng, tops)
        cv2.imwrite(str(tmp_path / f"{number}.png"), page)
        pages.append((str(tmp_path / f"{number}.png"), lines))
    train(load_pages(pages), str(tmp_path / "finder"), steps=150)
    session = load_line_finder(str(tmp_path / "finder" / "line_finder.onnx"))
    page, lines = drawn_page(rng, range(70, 600, 55))
    found = find_lines_with_model(session, cv2.cvtColor(page, cv2.COLOR_GRAY2BGR))
    truth = [list(cv2.boundingRect(polygon.astype(np.int32))) for polygon, _ in lines]
    assert matched_boxes([line["box"] for line in found], truth) >= len(truth) - 1, (found, truth)
