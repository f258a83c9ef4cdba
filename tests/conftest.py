import glob
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GW_WORDS = os.path.join(REPO, "..", "shared", "data", "gw_words")
sys.path.insert(0, REPO)


def run_script(script, *args, cwd=None, timeout=600):
    """Runs one of the project's scripts (train.py) or modules (benchmarks.speed) as a user would,
    returning the CompletedProcess."""
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    command = [os.path.join(REPO, script)] if script.endswith(".py") else ["-m", script]
    return subprocess.run([sys.executable, *command, *map(str, args)], cwd=cwd or REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """A small demo dataset in the IAM words layout, made by the project's own generator."""
    from htr.data.demo import generate_demo_words
    return generate_demo_words(str(tmp_path_factory.mktemp("demo") / "Demo_Words"), num_words=96, seed=7)


@pytest.fixture(scope="session")
def trained_model_dir(demo_dir, tmp_path_factory):
    """A model folder written by train.py: 3 epochs at batch size 8 on the small demo set."""
    model_dir = str(tmp_path_factory.mktemp("run") / "model")
    result = run_script("train.py", "--data-dir", demo_dir, "--epochs", 3, "--batch-size", 8, "--model-dir", model_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return model_dir


@pytest.fixture(scope="session")
def random_model_dir(demo_dir, tmp_path_factory):
    """model.py's recognizer with random weights, its output layer scaled up, exported with the
    project's export_onnx. The briefly trained model above still reads every word as "", so
    comparing its readings proves little; this one writes a different string for most images."""
    import keras

    from htr.export import export_onnx
    from model import tutorial_model

    keras.utils.set_random_seed(0)
    vocab = "abcdefghij"
    model = tutorial_model(input_dim=(32, 128, 3), output_dim=len(vocab), dropout=0.2)
    kernel, bias = model.get_layer("output").get_weights()
    model.get_layer("output").set_weights([kernel * 20, bias])
    folder = tmp_path_factory.mktemp("random_model")
    export_onnx(model, str(folder / "model.onnx"), {"vocab": vocab, "height": 32, "width": 128, "max_text_length": 12})
    demo_images = sorted(glob.glob(os.path.join(demo_dir, "words", "**", "*.png"), recursive=True))
    with open(folder / "train.csv", "w", encoding="utf-8") as f:  # what --quantize calibrates on
        f.write("image_path,label\n" + "".join(f"{path},x\n" for path in demo_images))
    (folder / "lexicon.txt").write_text("bad\ncafe\nfig\nhide\njig\nbeige\n", encoding="utf-8")
    return str(folder)
