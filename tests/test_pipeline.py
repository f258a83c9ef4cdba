"""train.py -> model folder -> ONNX -> inferenceModel.py, run as a user runs them."""
import csv
import json
import os
import re
import shutil
import socket
import zipfile

import pytest
import yaml

from conftest import GW_WORDS, run_script
from htr.training.distribute import has_native_bfloat16


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def trained(trained_model_dir):
    return trained_model_dir


@pytest.mark.slow
def test_training_writes_a_complete_model_folder(trained, demo_dir):
    for name in ["configs.yaml", "model.keras", "model.onnx", "train.csv", "val.csv", "history.csv", "logs.log", "onnx_check.json",
                 "training.json"]:
        assert os.path.isfile(os.path.join(trained, name)), name
    for part in ["train", "validation", "preview"]:  # TensorBoard curves, and validation words as read
        assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(trained, "logs", part)))

    labels = [line.split()[-1] for line in open(os.path.join(demo_dir, "words.txt"), encoding="utf-8") if not line.startswith("#")]
    with open(os.path.join(trained, "configs.yaml")) as f:
        configs = yaml.safe_load(f)
    assert configs["vocab"] == "".join(sorted(set("".join(labels))))
    assert configs["max_text_length"] == max(map(len, labels))
    assert (configs["height"], configs["width"], configs["batch_size"]) == (32, 128, 8)
    with zipfile.ZipFile(os.path.join(trained, "last.keras")) as checkpoint:  # the optimizer as trained and saved
        optimizer = json.loads(checkpoint.read("config.json"))["compile_config"]["optimizer"]["config"]
    assert configs["weight_decay"] == optimizer["weight_decay"] == 0.1  # the default preset trains with AdamW
    # bfloat16 only where the hardware computes it: emulated on an AVX2 CPU it trained at 9.5 samples/s, float32 at 72.5.
    assert configs["mixed_precision"] == ("bfloat16" if has_native_bfloat16() else "off")

    train, val = read_rows(os.path.join(trained, "train.csv")), read_rows(os.path.join(trained, "val.csv"))
    with open(os.path.join(trained, "lexicon.txt"), encoding="utf-8") as f:
        assert f.read().split("\n")[:-1] == sorted({r["label"] for r in train})  # training words only
    assert len(train) + len(val) == len(labels) and len(val) == pytest.approx(len(labels) * 0.1, abs=1)
    assert not {r["image_path"] for r in train} & {r["image_path"] for r in val}

    history = read_rows(os.path.join(trained, "history.csv"))
    assert len(history) == 3
    assert float(history[-1]["loss"]) < float(history[0]["loss"])  # it learned something

    with open(os.path.join(trained, "onnx_check.json")) as f:
        assert json.load(f)["max_abs_difference"] <= 1e-4


@pytest.mark.slow
def test_the_onnx_file_alone_is_enough_for_inference(trained):
    from htr.recognizer import ImageToWordModel
    with open(os.path.join(trained, "configs.yaml")) as f:
        configs = yaml.safe_load(f)
    model = ImageToWordModel(os.path.join(trained, "model.onnx"))
    assert model.vocab == configs["vocab"] and (model.height, model.width) == (32, 128)
    assert model.metadata["max_text_length"] == configs["max_text_length"]


@pytest.mark.slow
def test_inference_cer_agrees_with_the_logged_val_cer(trained, tmp_path):
    history = read_rows(os.path.join(trained, "history.csv"))
    best_val_cer = min(float(row["val_CER"]) for row in history)  # the epoch ModelCheckpoint kept

    output = str(tmp_path / "predictions.csv")
    result = run_script("inferenceModel.py", "--model", trained, "--output", output)
    assert result.returncode == 0, result.stderr[-3000:]
    average_cer = float(re.search(r"Average CER: ([\d.]+)", result.stdout).group(1))
    assert average_cer == pytest.approx(best_val_cer, abs=0.01)
    assert re.search(r"Corpus CER: [\d.]+", result.stdout) and re.search(r"Word accuracy: [\d.]+", result.stdout)

    rows = read_rows(output)
    assert list(rows[0]) == ["image_path", "label", "prediction", "confidence", "cer"]
    assert all(0 <= float(r["confidence"]) <= 1 for r in rows)
    assert len(rows) == len(read_rows(os.path.join(trained, "val.csv")))
    assert sum(float(r["cer"]) for r in rows) / len(rows) == pytest.approx(average_cer, abs=1e-4)


@pytest.mark.slow
def test_inference_without_arguments_and_on_unlabelled_images(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "Models" / "03_handwriting_recognition" / "202601010000")
    result = run_script("inferenceModel.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Models/03_handwriting_recognition/202601010000/model.onnx" in result.stdout
    assert "Average CER:" in result.stdout

    images = [r["image_path"] for r in read_rows(os.path.join(trained, "val.csv"))]
    folder = tmp_path / "unlabelled"
    folder.mkdir()
    for i, path in enumerate(images[:3]):
        shutil.copy(path, folder / f"word{i}.png")
    result = run_script("inferenceModel.py", "--model", os.path.join(trained, "model.onnx"), folder, images[3])
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()  # a prediction may be empty: "path<TAB><TAB>confidence"
    assert [line.split("\t")[0] for line in lines] == [str(folder / f"word{i}.png") for i in range(3)] + [images[3]]
    assert all(line.count("\t") == 2 and 0 <= float(line.split("\t")[2]) <= 1 for line in lines)


@pytest.mark.parametrize("content", [b"", b"not an onnx model at all"])
@pytest.mark.slow
def test_a_bad_model_file_gets_one_clear_line(tmp_path, content):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(content)
    result = run_script("inferenceModel.py", "--model", bad, "--csv", tmp_path / "none.csv")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and str(bad) in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_failed_onnx_export_fails_the_run(demo_dir, tmp_path):
    model_dir = tmp_path / "model"
    (model_dir / "model.onnx").mkdir(parents=True)  # the export cannot write its file
    result = run_script("train.py", "--data-dir", demo_dir, "--epochs", 1, "--batch-size", 16, "--model-dir", model_dir)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "error:" in result.stderr and "model.onnx" in result.stderr
    assert not (model_dir / "model.onnx.tmp").exists()


def test_export_raises_on_a_graph_onnx_cannot_express(tmp_path):
    import keras
    import tensorflow as tf
    from htr.export import OnnxExportError, export_onnx

    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: tf.py_function(lambda y: y * 2, [x], tf.float32), output_shape=(4,))(inputs)
    path = str(tmp_path / "model.onnx")
    with pytest.raises(OnnxExportError, match="ONNX export"):
        export_onnx(keras.Model(inputs, outputs), path, {"vocab": "ab"})
    assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_train_flags_are_explained_and_checked():
    result = run_script("train.py", "--help")
    assert result.returncode == 0
    for flag in ["--dataset", "--data-dir", "--epochs", "--batch-size", "--learning-rate", "--weight-decay", "--dropout",
                 "--model-dir", "--split", "--archive"]:
        assert flag in result.stdout
    result = run_script("train.py", "--epochs", "0")
    assert result.returncode == 2 and "--epochs" in result.stderr and "at least 1" in result.stderr
    result = run_script("train.py", "--dropout", "1")
    assert result.returncode == 2 and "--dropout" in result.stderr and "below 1" in result.stderr
    result = run_script("train.py", "--weight-decay", "-0.1")
    assert result.returncode == 2 and "--weight-decay" in result.stderr and "at least 0" in result.stderr
    result = run_script("train.py", "--weight-decay", "inf")
    assert result.returncode == 2 and "--weight-decay" in result.stderr and "finite" in result.stderr


@pytest.mark.slow
def test_iam_download_offline_fails_clearly(tmp_path):
    with socket.socket() as s:  # a port on this machine with nothing listening
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/IAM_Words.zip"
    result = run_script("train.py", "--dataset", "iam", "--dataset-url", url, cwd=tmp_path, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert url in result.stderr and "--archive" in result.stderr and "--data-dir" in result.stderr


@pytest.mark.skipif(not os.path.isdir(GW_WORDS), reason="../shared/data/gw_words (real handwriting) is not here")
@pytest.mark.slow
def test_one_epoch_on_real_handwriting(tmp_path):
    model_dir = str(tmp_path / "gw")
    result = run_script("train.py", "--data-dir", GW_WORDS, "--epochs", 1, "--model-dir", model_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "3726 words kept" in result.stdout and "2433 train, 1293 val" in result.stdout
    assert len(read_rows(os.path.join(model_dir, "val.csv"))) == 1293

    val_cer = float(read_rows(os.path.join(model_dir, "history.csv"))[0]["val_CER"])
    result = run_script("inferenceModel.py", "--model", model_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(re.search(r"Average CER: ([\d.]+)", result.stdout).group(1)) == pytest.approx(val_cer, abs=0.01)
