"""Photos as well as scans: the photo-like generator, the paper normalisation inside the exported
ONNX model, the crop to the ink that training and inference share, and python -m benchmarks.quality photos."""
import csv
import os
import re
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml

from htr.data.augment import RandomPhoto, photo_like
from conftest import run_script
from htr.images import read_image
from htr.preprocess import crop_to_ink
from htr.recognizer import ImageToWordModel


def val_rows(model_dir):
    with open(os.path.join(model_dir, "val.csv"), newline="", encoding="utf-8") as f:
        return [(row["image_path"], row["label"]) for row in csv.DictReader(f)]


def word_image():
    """Dark strokes on white paper, 60 x 160 pixels."""
    image = np.full((60, 160, 3), 255, np.uint8)
    image[20:45, 20:28] = image[20:28, 20:140] = image[30:50, 100:108] = 20
    return image


def photographed(image, tint=(0.7, 0.8, 0.9), light=(1.0, 0.55)):
    """The word on tinted paper under light that falls off from left to right."""
    falloff = np.linspace(*light, image.shape[1])[np.newaxis, :, np.newaxis]
    return np.clip(image * np.array(tint) * falloff, 0, 255).astype(np.uint8)


def test_photo_like_is_the_same_for_the_same_seed_and_looks_like_a_photo():
    scan = word_image()
    photo = photo_like(scan, np.random.default_rng(3))
    assert photo.dtype == np.uint8 and photo.ndim == 3 and photo.shape[2] == 3
    assert np.array_equal(photo, photo_like(scan, np.random.default_rng(3)))
    assert not np.array_equal(photo, photo_like(scan, np.random.default_rng(4)))
    assert photo.shape[0] >= scan.shape[0] and photo.shape[1] >= scan.shape[1]  # a looser crop, never a tighter one
    assert np.percentile(photo, 90) < 250  # no longer white paper

    from mltu.annotations.images import CVImage

    np.random.seed(5)  # the augmentor follows NumPy's global generator, which train.py seeds
    first = RandomPhoto(random_chance=1.0)(CVImage(scan), "x")[0].numpy()
    np.random.seed(5)
    assert np.array_equal(first, RandomPhoto(random_chance=1.0)(CVImage(scan), "x")[0].numpy())
    assert first.shape[0] > scan.shape[0]


def test_crop_to_ink_cuts_a_loose_shadowed_photo_at_the_sides_of_the_word():
    loose = np.full((160, 400, 3), 255, np.uint8)
    loose[50:110, 120:280] = word_image()  # strokes in columns 140-260
    cropped = crop_to_ink(photographed(loose, light=(1.0, 0.6)))
    assert cropped.shape[0] == 160 and abs(cropped.shape[1] - 120 - 6) <= 4  # the strokes, a small margin each side
    blank = photographed(np.full((60, 160, 3), 255, np.uint8))
    assert crop_to_ink(blank) is blank


def test_crop_to_band_gives_a_loose_photo_a_scans_proportions():
    """band=True cuts the empty paper above and below beyond the word's writing band, whatever the
    crop's looseness, and never cuts ink."""
    scan = np.full((90, 160, 3), 255, np.uint8)
    scan[30:55, 20:140] = word_image()[20:45, 0:120]
    scan[12:30, 30:36] = 20  # an ascender
    tight = crop_to_ink(scan, band=True)
    for above, below in ((60, 10), (10, 70), (70, 70)):
        loose = cv2.copyMakeBorder(scan, above, below, 0, 0, cv2.BORDER_CONSTANT, value=(255, 255, 255))
        cropped = crop_to_ink(photographed(loose), band=True)
        assert abs(cropped.shape[0] - tight.shape[0]) <= 0.2 * tight.shape[0], (above, below, cropped.shape)
        assert (cv2.cvtColor(cropped, cv2.COLOR_BGR2GRAY) < 60).sum() == (cv2.cvtColor(photographed(loose), cv2.COLOR_BGR2GRAY) < 60).sum()
        assert crop_to_ink(loose).shape[0] == loose.shape[0]  # without band: the height stays


@pytest.mark.slow
def test_a_model_trained_with_crop_band_crops_so_at_inference(demo_dir, tmp_path):
    """train.py --crop band: the ONNX metadata says so, and ImageToWordModel.resize gives the model
    the pixels train.py's pipeline gave it, for a loosely cropped word too."""
    from htr.data.pipeline import data_provider

    model_dir = tmp_path / "band"
    result = run_script("train.py", "--data-dir", demo_dir, "--crop", "band", "--epochs", 1, "--model-dir", model_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    model = ImageToWordModel(str(model_dir))
    assert model.crop == "band"
    configs = SimpleNamespace(**yaml.safe_load(open(model_dir / "configs.yaml")))
    assert configs.crop == "band"
    rows = val_rows(str(model_dir))[:2]
    loose = cv2.copyMakeBorder(read_image(rows[0][0]), 40, 40, 30, 30, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    cv2.imwrite(str(tmp_path / "loose.png"), loose)
    rows.append((str(tmp_path / "loose.png"), rows[0][1]))
    images, _ = data_provider(rows, configs, batch_size=len(rows))[0]
    assert np.array_equal(images, np.float32([model.resize(read_image(path)) for path, _ in rows]))
    # The loose copy's word fills more of the model's height than it would cut at the sides only.
    sides_only = cv2.resize(crop_to_ink(loose), (configs.width, configs.height))
    assert (images[-1] < 128).any(axis=(1, 2)).sum() > (sides_only < 128).any(axis=(1, 2)).sum()


@pytest.mark.slow
def test_the_paper_normalisation_is_in_the_onnx_model(trained_model_dir, tmp_path):
    """Run through onnxruntime, the exported model's normalisation layer turns a scan and a tinted,
    unevenly lit copy of it into nearly the same image, and the whole model reads them alike."""
    onnx_path = os.path.join(trained_model_dir, "model.onnx")
    graph = onnx.load(onnx_path).graph
    normalised = [name for node in graph.node for name in node.output if "paper_normalization" in name][-1]
    layer_path = str(tmp_path / "paper_normalization.onnx")
    onnx.utils.extract_model(onnx_path, layer_path, [graph.input[0].name], [normalised])
    layer = ort.InferenceSession(layer_path, providers=["CPUExecutionProvider"])

    model = ImageToWordModel(trained_model_dir)
    scans = [model.resize(read_image(path)) for path, _ in val_rows(trained_model_dir)[:4]]
    scans.append(model.resize(word_image()))
    photos = [photographed(scan) for scan in scans]
    before = np.abs(np.float32(scans) - np.float32(photos)).mean()
    outputs = [layer.run(None, {graph.input[0].name: np.float32(images)})[0] for images in (scans, photos)]
    after = np.abs(outputs[0] - outputs[1]).mean()
    assert before > 40 and after < before / 8, (before, after)  # in 0-255 grey levels
    assert np.abs(model.probabilities(scans) - model.probabilities(photos)).max() < 0.1


@pytest.mark.slow
def test_training_and_inference_prepare_an_image_alike(trained_model_dir, tmp_path):
    """train.py's data pipeline (without augmentation) and ImageToWordModel.resize give the model the
    same pixels, also for a loosely cropped photo, which both crop to its ink."""
    from htr.data.pipeline import data_provider

    configs = SimpleNamespace(**yaml.safe_load(open(os.path.join(trained_model_dir, "configs.yaml"))))
    rows = val_rows(trained_model_dir)[:3]
    loose = np.full((160, 400, 3), 255, np.uint8)
    loose[50:110, 120:280] = word_image()
    cv2.imwrite(str(tmp_path / "loose.png"), photographed(loose, light=(1.0, 0.8)))
    rows.append((str(tmp_path / "loose.png"), rows[0][1]))
    images, _ = data_provider(rows, configs, batch_size=len(rows))[0]
    model = ImageToWordModel(trained_model_dir)
    assert model.crop == "band"  # the defaults
    assert np.array_equal(images, np.float32([model.resize(read_image(path)) for path, _ in rows]))
    assert (images[-1] < 128).mean() > 0.04  # the loose photo's word fills the width, as a scan's does (2% uncropped)


@pytest.mark.slow
def test_bench_photos_scores_scans_and_photos(trained_model_dir):
    result = run_script("benchmarks.quality", "photos", "--model", trained_model_dir, "--images", 6, "--seed", 1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ": 6 labelled images from" in result.stdout
    for name in ("scans", "photos"):
        assert re.search(rf"^  {name} +CER +[\d.]+%", result.stdout, re.MULTILINE), name
    assert re.search(r"photos read [+-][\d.]+ points of CER", result.stdout)
