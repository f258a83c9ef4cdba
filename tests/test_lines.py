"""Whole lines read by one model (--preset line): trained for real on generated demo lines, exported
with a free width, read by inferenceModel.py with every decoder, and its words given boxes and
confidences from the CTC alignment."""
import csv
import json
import os

import cv2
import numpy as np
import onnx
import pytest

from conftest import run_script
from htr.images import read_image
from htr.recognizer import ImageToWordModel


@pytest.fixture(scope="module")
def demo_lines(tmp_path_factory):
    from htr.data.demo import generate_demo_lines
    return generate_demo_lines(str(tmp_path_factory.mktemp("lines") / "Demo_Lines"), num_lines=96, seed=3)


@pytest.fixture(scope="module")
def random_line_model(demo_lines, tmp_path_factory):
    """model.py's line recognizer with random weights, its output layer scaled up so it writes
    something for every line, exported as train.py exports it (a free width)."""
    import keras

    from htr.export import export_onnx
    from model import columns_model

    keras.utils.set_random_seed(0)
    vocab = "abcdefgh "
    model = columns_model(input_dim=(48, None, 3), output_dim=len(vocab), dropout=0.1)
    kernel, bias = model.get_layer("output").get_weights()
    model.get_layer("output").set_weights([kernel * 30, bias])
    path = str(tmp_path_factory.mktemp("random_line") / "model.onnx")
    export_onnx(model, path, {"vocab": vocab, "height": 48, "width": None, "keep_aspect_ratio": True,
                              "max_text_length": 60, "crop_to_ink": "columns"})
    return path


def line_images(demo_lines):
    with open(os.path.join(demo_lines, "labels.csv"), encoding="utf-8") as f:
        return [(os.path.join(demo_lines, row["image_path"]), row["label"]) for row in csv.DictReader(f)]


def test_a_line_model_takes_lines_of_any_width(random_line_model, demo_lines):
    model = ImageToWordModel(random_line_model)
    assert model.width is None and model.height == 48
    images = [read_image(path) for path, _ in line_images(demo_lines)[:3]]
    short = images[0]
    long = np.hstack([cv2.resize(image, (image.shape[1] * 60 // image.shape[0], 60)) for image in images])
    for image in (short, long):
        prepared = model.resize(image)
        assert prepared.shape[0] == 48 and abs(prepared.shape[1] / image.shape[1] * image.shape[0] / 48 - 1) < 0.2
    texts, confidences = model.predict_batch([short, long])
    assert all(texts) and all(0 <= c <= 1 for c in confidences)


def test_read_line_gives_every_word_a_box_on_its_ink_and_a_confidence(random_line_model, demo_lines):
    model = ImageToWordModel(random_line_model)
    for path, _ in line_images(demo_lines)[:5]:
        image = read_image(path)
        line = model.read_line(image)
        assert line["text"] == model.predict(image)[0]
        assert [word["text"] for word in line["words"]] == line["text"].split()
        lefts = [word["box"][0] for word in line["words"]]
        assert lefts == sorted(lefts)  # in reading order
        for word in line["words"]:
            x, y, w, h = word["box"]
            assert 0 <= x and 0 <= y and x + w <= image.shape[1] and y + h <= image.shape[0]
            assert 0 <= word["confidence"] <= 1
            assert (image[y:y + h, x:x + w] < 128).any()  # on ink, not on bare paper


@pytest.mark.slow
def test_a_tiny_line_model_trains_on_demo_lines_and_inference_reads_them(demo_lines, tmp_path):
    model_dir = str(tmp_path / "line_model")
    result = run_script("train.py", "--preset", "line", "--data-dir", demo_lines, "--epochs", 4, "--batch-size", 8,
                        "--model-dir", model_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metadata = {p.key: json.loads(p.value) for p in onnx.load(os.path.join(model_dir, "model.onnx")).metadata_props}
    assert metadata["width"] is None and metadata["height"] == 48 and " " in metadata["vocab"]
    with open(os.path.join(model_dir, "history.csv")) as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert losses[-1] < 0.8 * losses[0]  # it learns
    with open(os.path.join(model_dir, "lexicon.txt"), encoding="utf-8") as f:
        lexicon = f.read().split("\n")
    assert lexicon and not any(" " in word for word in lexicon)  # the lines' words, applied word by word

    for flags in ([], ["--decoder", "beam"], ["--lexicon", os.path.join(model_dir, "lexicon.txt")], ["--quantize"]):
        read = run_script("inferenceModel.py", "--model", model_dir, *flags)
        assert read.returncode == 0, read.stderr[-2000:]
        assert "Corpus CER:" in read.stdout and "WER:" in read.stdout
    # The int8 copy (calibrated on lines made one width) reads lines of any width as the float model does.
    float_model, int8_model = ImageToWordModel(model_dir), ImageToWordModel(os.path.join(model_dir, "model.int8.onnx"))
    images = [float_model.resize(read_image(path)) for path, _ in line_images(demo_lines)[:16]]
    assert len({image.shape[1] for image in images}) > 1
    steps = [(float_model.probabilities(image[np.newaxis]).argmax(-1), int8_model.probabilities(image[np.newaxis]).argmax(-1))
             for image in images]
    assert np.mean(np.concatenate([a == b for a, b in steps], axis=None)) >= 0.9
    curve = run_script("benchmarks.quality", "curve", "--model", model_dir)
    assert curve.returncode == 0, curve.stderr[-2000:]
    rows = [line.split("|")[1:4] for line in curve.stdout.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [int(epoch) for epoch, _, _ in rows] == list(range(1, len(losses) + 1))
    assert all(float(minutes) >= 0 for _, minutes, _ in rows)

    # Fine-tuning a line model (the starting model is one): a line model again, its vocabulary grown.
    with open(tmp_path / "accents.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("image_path", "label")] + [(path, label.replace("e", "é")) for path, label in line_images(demo_lines)])
    tuned_dir = str(tmp_path / "tuned")
    tuned = run_script("train.py", "--init-from", model_dir, "--train-csv", tmp_path / "accents.csv", "--epochs", 1,
                       "--model-dir", tuned_dir)
    assert tuned.returncode == 0, tuned.stdout[-3000:] + tuned.stderr[-3000:]
    grown = {p.key: json.loads(p.value) for p in onnx.load(os.path.join(tuned_dir, "model.onnx")).metadata_props}
    assert grown["width"] is None and grown["vocab"] == metadata["vocab"] + "é"

    image = line_images(demo_lines)[0][0]
    words = run_script("inferenceModel.py", "--model", model_dir, "--words", image)
    assert words.returncode == 0, words.stderr[-2000:]
    first, *word_rows = words.stdout.strip("\n").split("\n")
    assert first.startswith(image + "\t")
    for row in word_rows:
        _, text, confidence, box = row.split("\t")
        assert text and 0 <= float(confidence) <= 1 and len(box.split(",")) == 4


def test_the_line_models_input_is_the_line_scaled_to_its_height(random_line_model):
    model = ImageToWordModel(random_line_model)
    line = np.full((120, 1500, 3), 255, np.uint8)
    cv2.putText(line, "a long line of writing", (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 2.5, (0, 0, 0), 5)
    prepared = model.resize(line)
    assert prepared.shape[0] == 48 and prepared.shape[2] == 3
    assert prepared.shape[1] < 1500 * 48 / 120  # cut to the ink at the left and right first


def test_read_page_with_a_line_model_reads_every_line_found_whole(random_line_model, monkeypatch):
    from htr.pages.compose import box_iou
    monkeypatch.setattr("htr.pages.line_finder.bundled_line_finder", lambda: None)  # the classical finder's drawn page
    from htr.pages.reading import read_page
    from test_lines_found import as_bgr, scanned_page
    model = ImageToWordModel(random_line_model)
    grey, truth = scanned_page(np.random.default_rng(0))
    page = as_bgr(grey)
    result = read_page(model, page)
    assert len(result["lines"]) == len(truth)
    for line, box in zip(result["lines"], truth):
        assert box_iou(line["box"], box) >= 0.5
        assert line["text"] and 0 <= line["confidence"] <= 1 and len(line["polygon"]) >= 4 and len(line["baseline"]) >= 2
    assert result["text"] == "\n".join(line["text"] for line in result["lines"])
    for word in result["words"]:
        x, y, w, h = word["box"]
        line = result["lines"][word["line"]]["box"]
        assert line[1] <= y and y + h <= line[1] + line[3]  # within its line's rows
        assert (page[y:y + h, x:x + w] < 128).any()
    for number, line in enumerate(result["lines"]):
        assert " ".join(word["text"] for word in result["words"] if word["line"] == number) == " ".join(line["text"].split())


def test_a_line_cut_by_hand_is_read_whole_as_one_line(random_line_model, demo_lines):
    model = ImageToWordModel(random_line_model)
    image = read_image(line_images(demo_lines)[0][0])
    result = model.read_page(image)
    assert [line["text"] for line in result["lines"]] == [model.read_line(image)["text"]]


def test_read_lines_reads_each_line_as_it_reads_it_alone(random_line_model, demo_lines):
    model = ImageToWordModel(random_line_model)
    short, long = (read_image(path) for path, _ in line_images(demo_lines)[:2])
    long = np.hstack([long, long, long])  # a neighbour three times as wide changes nothing
    assert model.read_lines([short, long]) == [model.read_line(short), model.read_line(long)]


def test_the_line_augmentations_keep_some_of_every_line_whatever_its_size():
    from mltu.annotations.images import CVImage

    from htr.data.pipeline import training_augmentors
    np.random.seed(0)
    for shape in [(1, 1, 3), (2, 3, 3), (3, 40, 3), (8, 5, 3), (60, 700, 3)]:
        for _ in range(50):
            image, label = CVImage(np.random.randint(0, 255, shape, np.uint8)), "a"
            for augmentor in training_augmentors("lines"):
                image, label = augmentor(image, label)
            assert image.numpy().size > 0


def test_read_line_given_the_lines_darkness_reads_it_as_without(random_line_model, demo_lines):
    from htr.preprocess import ink_darkness
    model = ImageToWordModel(random_line_model)
    images = [read_image(path) for path, _ in line_images(demo_lines)[:3]]
    assert model.read_lines(images, [ink_darkness(image) for image in images]) == model.read_lines(images)
