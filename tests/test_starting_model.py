"""The starting model shipped in assets/starting_model (a line model trained on Testaments de Poilus):
small enough for the repository, with its licence and training command; what inferenceModel.py and
app.py read with when there is no Models/; and a model train.py --init-from can start from."""
import csv
import json
import os
import re

import numpy as np
import onnx
import pytest

from conftest import REPO, run_script
from htr.recognizer import STARTING_MODEL_DIR, ImageToWordModel, newest_model_dir


def test_the_starting_model_is_small_licensed_and_says_how_it_was_trained():
    files = os.listdir(STARTING_MODEL_DIR)
    assert {"model.onnx", "model.keras", "configs.yaml", "LICENSE.md", "README.md"} <= set(files)
    assert sum(os.path.getsize(os.path.join(STARTING_MODEL_DIR, name)) for name in files) <= 20_000_000
    licence = open(os.path.join(STARTING_MODEL_DIR, "LICENSE.md"), encoding="utf-8").read()
    assert "CC-BY 4.0" in licence and "10.5281/zenodo.10177106" in licence
    assert "python train.py --preset line --data-dir" in open(os.path.join(STARTING_MODEL_DIR, "README.md"), encoding="utf-8").read()
    model = ImageToWordModel(STARTING_MODEL_DIR)
    assert model.width is None and "é" in model.vocab and " " in model.vocab


def test_with_no_models_folder_the_starting_model_reads_and_says_so(tmp_path, capsys):
    assert newest_model_dir(str(tmp_path / "Models")) == STARTING_MODEL_DIR
    assert "using the starting model" in capsys.readouterr().err
    from test_lines_found import as_bgr, scanned_page
    import cv2
    grey, truth = scanned_page(np.random.default_rng(1))
    cv2.imwrite(str(tmp_path / "page.png"), as_bgr(grey))
    result = run_script("inferenceModel.py", "--page", tmp_path / "page.png", "--output-dir", tmp_path / "out", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "using the starting model" in result.stderr
    with open(tmp_path / "out" / "page.json", encoding="utf-8") as f:
        assert len(json.load(f)["lines"]) == len(truth)
    scored = run_script("inferenceModel.py", cwd=tmp_path)
    assert scored.returncode != 0 and "has no val.csv to score" in scored.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_train_can_start_from_the_starting_model_and_its_vocabulary_grows(tmp_path):
    from htr.data.demo import generate_demo_lines
    lines = generate_demo_lines(str(tmp_path / "lines"), num_lines=40, seed=5)
    with open(os.path.join(lines, "labels.csv"), encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / "new.csv", "w", newline="", encoding="utf-8") as f:  # a character the model never saw
        csv.writer(f).writerows([("image_path", "label")] + [(os.path.join(lines, row["image_path"]), row["label"] + " ⁂") for row in rows])
    result = run_script("train.py", "--init-from", STARTING_MODEL_DIR, "--train-csv", tmp_path / "new.csv", "--minutes", 0.01,
                        "--model-dir", tmp_path / "tuned")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # As long as its own 36 training lines need (the line preset's 100,000 images), not the starting model's 44 epochs.
    assert "Training for 2778 epochs" in result.stdout
    metadata = {p.key: json.loads(p.value) for p in onnx.load(str(tmp_path / "tuned" / "model.onnx")).metadata_props}
    assert metadata["width"] is None and metadata["vocab"] == ImageToWordModel(STARTING_MODEL_DIR).vocab + "⁂"


POILUS = os.path.join(REPO, "..", "shared", "data", "poilus_alto")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(POILUS), reason="../shared/data/poilus_alto is absent")
def test_it_reads_whole_pages_by_the_writers_it_never_saw():
    result = run_script("benchmarks.quality", "real-pages", "--model", STARTING_MODEL_DIR, "--alto-dir", POILUS)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "104 documents (2275 lines) train, 14 (254 lines) val" in result.stdout  # the split the model was trained with
    found = float(result.stdout.split("lines found at IoU >= 0.5:")[1].split("F1 ")[1].split()[0])
    page_cer = float(re.search(r"^  page CER ([\d.]+)%", result.stdout, re.M).group(1))
    assert found > 0.9 and page_cer < 50, result.stdout  # measured 0.924 and 42.5%


def test_real_pages_on_a_folder_without_an_export_says_so_in_one_line(tmp_path):
    result = run_script("benchmarks.quality", "real-pages", "--model", STARTING_MODEL_DIR, "--alto-dir", tmp_path)
    assert result.returncode != 0
    assert result.stderr.strip() == f"error: {tmp_path} holds no ALTO or PAGE XML file with transcribed lines; give an export's folder"
