"""Tests for the offline demo set: real generation into tmp_path, no mocks, a few seconds in all."""

import csv
import glob
import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

import htr.data.demo as demo_words
from conftest import REPO
from htr.data.labels_csv import parse_labels_csv

DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def read_entries(dataset_dir):
    """Non-comment lines of words.txt, split into fields."""
    with open(os.path.join(dataset_dir, "words.txt"), encoding="utf-8") as file:
        return [line.rstrip("\n").split(" ") for line in file if not line.startswith("#")]


def image_path(dataset_dir, word_id):
    """Where IAM keeps a word image: words/a01/a01-000u/a01-000u-00-00.png."""
    form_id = "-".join(word_id.split("-")[:2])
    return os.path.join(dataset_dir, "words", word_id[:3], form_id, word_id + ".png")


def test_layout_and_words_txt_follow_iam(tmp_path):
    dataset_dir = demo_words.generate_demo_words(str(tmp_path / "demo"), num_words=80, seed=1)
    assert dataset_dir == str(tmp_path / "demo")
    entries = read_entries(dataset_dir)
    assert len(entries) == 80
    assert len({fields[0] for fields in entries}) == 80
    vocabulary = set(demo_words.load_vocabulary())
    for fields in entries:
        assert len(fields) >= 9, fields
        word_id, result, graylevel, x, y, width, height = fields[:7]
        assert result == "ok"
        assert all(value.isdigit() for value in (graylevel, x, y, width, height))
        assert fields[-1] in vocabulary
        image = cv2.imread(image_path(dataset_dir, word_id), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.dtype == np.uint8 and image.ndim in (2, 3)
        assert image.shape[:2] == (int(height), int(width))
        assert image.mean() > 128 and image.min() < 100, f"{word_id} is not dark ink on light paper"
    assert len(glob.glob(os.path.join(dataset_dir, "words", "*", "*", "*.png"))) == 80


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    first = demo_words.generate_demo_words(str(tmp_path / "a"), num_words=30, seed=7)
    second = demo_words.generate_demo_words(str(tmp_path / "b"), num_words=30, seed=7)
    other = demo_words.generate_demo_words(str(tmp_path / "c"), num_words=30, seed=8)

    def contents(dataset_dir):
        paths = sorted(glob.glob(os.path.join(dataset_dir, "**", "*.*"), recursive=True))
        return {os.path.relpath(path, dataset_dir): open(path, "rb").read() for path in paths}

    assert contents(first) == contents(second)
    assert contents(first)["words.txt"] != contents(other)["words.txt"]


def test_complete_set_is_reused_and_new_parameters_regenerate(tmp_path):
    dataset_dir = demo_words.generate_demo_words(str(tmp_path / "demo"), num_words=20, seed=3)
    before = os.stat(os.path.join(dataset_dir, "words.txt"))
    demo_words.generate_demo_words(dataset_dir, num_words=20, seed=3)
    after = os.stat(os.path.join(dataset_dir, "words.txt"))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

    demo_words.generate_demo_words(dataset_dir, num_words=25, seed=3)
    assert len(read_entries(dataset_dir)) == 25
    assert demo_words.read_marker(dataset_dir) == {"num_words": 25, "seed": 3}


def test_interrupted_set_is_replaced(tmp_path):
    dataset_dir = str(tmp_path / "demo")
    demo_words.generate_demo_words(dataset_dir, num_words=20, seed=3)
    os.remove(os.path.join(dataset_dir, demo_words.MARKER_NAME))  # as if the run had stopped before the end
    open(os.path.join(dataset_dir, "half-written.png"), "w").close()
    os.makedirs(dataset_dir + ".tmp-99999")  # leftover build folder of a killed run

    demo_words.generate_demo_words(dataset_dir, num_words=20, seed=3)
    assert demo_words.read_marker(dataset_dir) == {"num_words": 20, "seed": 3}
    assert not os.path.exists(os.path.join(dataset_dir, "half-written.png"))
    assert os.listdir(tmp_path) == ["demo"]


def test_refuses_to_overwrite_a_folder_it_did_not_make(tmp_path):
    dataset_dir = tmp_path / "IAM_Words"
    dataset_dir.mkdir()
    (dataset_dir / "words.txt").write_text("#--- words.txt ---\na01-000u-00-00 ok 154 408 768 27 51 AT A\n")
    with pytest.raises(SystemExit, match="not a demo set"):
        demo_words.generate_demo_words(str(dataset_dir), num_words=5)
    assert (dataset_dir / "words.txt").exists()


def test_bad_arguments_give_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="num_words"):
        demo_words.generate_demo_words(str(tmp_path / "demo"), num_words=0)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit, match="writable"):
        demo_words.generate_demo_words(str(blocker / "demo"), num_words=5)


def test_shipped_vocabulary_can_be_drawn():
    vocabulary = demo_words.load_vocabulary()
    assert len(vocabulary) >= 1000
    assert len(set(vocabulary)) == len(vocabulary)
    assert all(" " not in word for word in vocabulary)
    assert set("".join(vocabulary)) <= set(demo_words.PEN_GLYPHS)
    assert {"the", ",", ".", '"', "'s", "-"} <= set(vocabulary)


@pytest.mark.skipif(not os.path.exists(DEJAVU), reason="needs DejaVu Sans to stand in for a handwriting font")
def test_handwriting_fonts_are_found_and_drawn(tmp_path):
    shutil.copy(DEJAVU, tmp_path / "SomeHandwriting.ttf")
    shutil.copy(DEJAVU, tmp_path / "PlainSans.ttf")
    fonts = demo_words.find_handwriting_fonts([str(tmp_path)])
    assert fonts == [str(tmp_path / "SomeHandwriting.ttf")]

    rng = np.random.default_rng(0)
    style = {**demo_words.random_writer_style(rng, []), "font": fonts[0]}
    image, graylevel = demo_words.render_word("Hello,", style, rng)
    assert image.dtype == np.uint8 and image.mean() > 128 and image.min() < 100
    assert 0 < graylevel < 255


@pytest.mark.slow
def test_command_line(tmp_path):
    command = [sys.executable, "-m", "htr.data.demo", "--dataset-dir", str(tmp_path / "demo"), "--num-words", "5", "--seed", "2"]
    first = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    assert "Wrote 5 words" in first.stdout
    second = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    assert "Reusing" in second.stdout
    bad = subprocess.run(command[:-4] + ["--num-words", "0"], capture_output=True, text=True, cwd=REPO)
    assert bad.returncode != 0 and "num_words must be at least 1" in bad.stderr


# -----------------------------------------------------------------------------
# demo lines: the demo words side by side, for a line model


def read_lines(dataset_dir):
    """labels.csv's (image_path, label) rows and boxes.json of a demo lines folder."""
    with open(os.path.join(dataset_dir, "labels.csv"), encoding="utf-8", newline="") as file:
        rows = [tuple(row) for row in csv.reader(file)]
    with open(os.path.join(dataset_dir, "boxes.json"), encoding="utf-8") as file:
        return rows[0], rows[1:], json.load(file)


def test_lines_have_spaced_labels_and_word_boxes_on_the_ink(tmp_path):
    dataset_dir = demo_words.generate_demo_lines(str(tmp_path / "lines"), num_lines=30, seed=1)
    header, rows, boxes = read_lines(dataset_dir)
    assert header == ("image_path", "label") and len(rows) == 30
    assert sorted(boxes) == sorted(os.path.basename(path) for path, _ in rows)
    vocabulary = set(demo_words.load_vocabulary())
    for path, label in rows:
        words = label.split(" ")
        assert demo_words.WORDS_PER_LINE[0] <= len(words) <= demo_words.WORDS_PER_LINE[1]
        assert set(words) <= vocabulary and "  " not in label
        image = cv2.imread(os.path.join(dataset_dir, path), cv2.IMREAD_GRAYSCALE)
        assert image.mean() > 128 and image.min() < 100, f"{path} is not dark ink on light paper"
        line_boxes = boxes[os.path.basename(path)]
        assert len(line_boxes) == len(words)
        for i, (x, y, w, h) in enumerate(line_boxes):
            assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= image.shape[1] and y + h <= image.shape[0]
            dark_columns = np.nonzero((image[y : y + h, x : x + w] < 128).any(axis=0))[0]
            assert len(dark_columns), f"{path}: box {i} of {label!r} holds no ink"
            assert dark_columns[0] <= 4 and dark_columns[-1] >= w - 5, f"{path}: box {i} of {label!r} is wider than its word"
        outside = image.copy()
        for x, y, w, h in line_boxes:
            outside[y : y + h, x : x + w] = 255
        assert outside.min() >= 100, f"{path}: ink outside every word box"
        for (x, _, w, _), (next_x, _, _, _) in zip(line_boxes, line_boxes[1:]):
            assert next_x - (x + w) >= 0.3 * 2 * 16 - 1, f"{path}: words closer than a gap"  # 16: the smallest x-height


def test_lines_sit_on_one_baseline(tmp_path):
    dataset_dir = demo_words.generate_demo_lines(str(tmp_path / "lines"), num_lines=20, seed=2)
    _, rows, boxes = read_lines(dataset_dir)
    for path, label in rows:
        # words without descenders end on the baseline: their bottoms agree to a fraction of a word's height
        bottoms = [y + h for (x, y, w, h), word in zip(boxes[os.path.basename(path)], label.split(" "))
                   if word.isalpha() and word.islower() and not set(word) & set("gjpqyf")]
        heights = [h for _, _, _, h in boxes[os.path.basename(path)]]
        if len(bottoms) >= 2:
            assert max(bottoms) - min(bottoms) <= 0.5 * max(heights), (path, label, bottoms)


def test_lines_same_seed_same_bytes_and_reused(tmp_path):
    first = demo_words.generate_demo_lines(str(tmp_path / "a"), num_lines=12, seed=5)
    second = demo_words.generate_demo_lines(str(tmp_path / "b"), num_lines=12, seed=5)
    other = demo_words.generate_demo_lines(str(tmp_path / "c"), num_lines=12, seed=6)

    def contents(dataset_dir):
        paths = sorted(glob.glob(os.path.join(dataset_dir, "**", "*.*"), recursive=True))
        return {os.path.relpath(path, dataset_dir): open(path, "rb").read() for path in paths}

    assert contents(first) == contents(second)
    assert contents(first)["labels.csv"] != contents(other)["labels.csv"]
    assert demo_words.read_marker(first) == {"num_lines": 12, "seed": 5}

    before = os.stat(os.path.join(first, "labels.csv"))
    demo_words.generate_demo_lines(first, num_lines=12, seed=5)
    after = os.stat(os.path.join(first, "labels.csv"))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    demo_words.generate_demo_lines(first, num_lines=7, seed=5)
    assert len(read_lines(first)[1]) == 7 and sorted(os.listdir(tmp_path)) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="num_lines"):
        demo_words.generate_demo_lines(str(tmp_path / "d"), num_lines=0)


def test_demo_lines_parse_as_a_labels_csv(tmp_path, capsys):
    dataset_dir = demo_words.generate_demo_lines(str(tmp_path / "lines"), num_lines=12, seed=3)
    rows = parse_labels_csv(os.path.join(dataset_dir, "labels.csv"))
    assert len(rows) == 12 and all(" " in label for _, _, label in rows)
    assert "12 rows read, 12 kept" in capsys.readouterr().out
