"""The training recipe's parts (configs.py presets, the learning-rate schedule, the slant
augmentation) and python -m benchmarks.speed train, which must keep working as the recipe changes."""
import json
import os
import re
import subprocess
import sys
import time
import zipfile

import keras
import numpy as np
import pytest
from mltu.annotations.images import CVImage

from htr.data.augment import RandomShear
from htr.training.callbacks import TrainingTimeLimit, WarmupCosineSchedule
from conftest import REPO, run_script


def fit_recording_learning_rates(schedule, epochs, steps, extra_callbacks=(), pause=0.0):
    """A real (tiny) Keras fit with `schedule`; the learning rate of every step."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1.0), loss="mse")
    rates = []

    def record(batch, logs):
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
        time.sleep(pause)
    recorder = keras.callbacks.LambdaCallback(on_train_batch_end=record)
    x, y = np.ones((steps * 2, 4)), np.ones((steps * 2, 1))
    # Trace the training step first: on a slow machine tracing alone took a fifth of a 3-second
    # budget, so the steps jumped over the whole warm-up. fit() reuses the traced step.
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    model.fit(x, y, batch_size=2, epochs=epochs, callbacks=[schedule, recorder, *extra_callbacks], verbose=0)
    return rates


def test_the_schedule_warms_up_then_decays_to_zero_over_the_epochs():
    rates = fit_recording_learning_rates(WarmupCosineSchedule(peak=1e-3, epochs=10), epochs=10, steps=20)
    peak_at = int(np.argmax(rates))
    assert rates[0] < 1e-4 and rates[peak_at] == pytest.approx(1e-3, rel=0.05)
    assert 0 < peak_at < len(rates) * 0.1  # the warm-up is short
    assert all(a >= b for a, b in zip(rates[peak_at:], rates[peak_at + 1:]))  # then only down
    assert rates[-1] < 1e-6


def test_a_time_budget_gets_the_whole_schedule_before_it_runs_out():
    # 1000 epochs planned, but 3 seconds to spend: the rate must reach ~0 when the time does.
    schedule = WarmupCosineSchedule(peak=1e-3, epochs=1000, minutes=0.05)
    rates = fit_recording_learning_rates(schedule, epochs=1000, steps=5, pause=0.05,
                                         extra_callbacks=[TrainingTimeLimit(0.05)])
    assert 20 < len(rates) < 5 * 1000
    assert max(rates) == pytest.approx(1e-3, rel=0.1)
    assert rates[-1] < 2e-5 and schedule.progress == pytest.approx(1.0, abs=0.02)


def test_slant_keeps_the_ink_and_fills_with_white():
    # A black vertical bar on white: slanted, its top and bottom ends move apart.
    pixels = np.full((40, 30, 3), 255, np.uint8)
    pixels[:, 14:16] = 0
    np.random.seed(3)
    slanted, _ = RandomShear(random_chance=1.0, max_shear=0.5)(CVImage(pixels.copy()), "label")
    slanted = slanted.numpy()
    assert slanted.shape[0] == 40 and slanted.shape[1] > 30  # widened, so nothing is cut off
    top, bottom = np.flatnonzero(slanted[1, :, 0] < 128).mean(), np.flatnonzero(slanted[-2, :, 0] < 128).mean()
    assert abs(top - bottom) > 5
    assert (slanted[0, 0] == 255).all() and (slanted[-1, -1] == 255).all() and (slanted[0, -1] == 255).all()
    assert (slanted < 128).sum() == pytest.approx((pixels < 128).sum(), rel=0.15)


@pytest.mark.slow
def test_bench_train_measures_both_presets_and_the_tutorial_model_with_the_defaults(demo_dir):
    result = run_script("benchmarks.speed", "train", "--data-dir", demo_dir, "--steps", 3)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = [line.strip() for line in result.stdout.splitlines()]
    for name, architecture, augmentation in (("tutorial", "tutorial", "tutorial"), ("default", "columns", "photos"),
                                             ("tutorial model", "tutorial", "photos")):
        line = next(line for line in lines if re.match(rf"{name} +\(", line))  # "tutorial" must not find "tutorial model"
        assert f"({architecture} model," in line and f"{augmentation} augmentation" in line, line
        figures = [float(word) for word in line.replace(",", " ").split() if word.replace(".", "").isdigit()]
        assert len(figures) >= 3 and all(f > 0 for f in figures[-2:]), line  # batch, pipeline, model alone
    assert "defaults / tutorial:" in result.stdout and "(same architecture):" in result.stdout


@pytest.mark.parametrize("setting, enabled", [(None, "True"), ("0", "False")])
@pytest.mark.slow
def test_training_uses_onednn_kernels_on_every_cpu_unless_told_not_to(setting, enabled):
    """TensorFlow turns its oneDNN kernels on by itself only on AVX-512 CPUs; importing train
    turns them on everywhere (2x the training speed on an AVX2 CPU), and TF_ENABLE_ONEDNN_OPTS=0
    still turns them off."""
    env = {name: value for name, value in os.environ.items() if name != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    check = "import train; from tensorflow.python.util import _pywrap_util_port as port; print(port.IsMklEnabled())"
    result = subprocess.run([sys.executable, "-c", check], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-1] == enabled


@pytest.mark.slow
def test_presets_reach_the_saved_configs_and_the_onnx_model(demo_dir, tmp_path):
    import yaml

    from htr.recognizer import ImageToWordModel

    model_dir = tmp_path / "tutorial"
    result = run_script("train.py", "--data-dir", demo_dir, "--preset", "tutorial", "--keep-aspect-ratio", "yes",
                        "--epochs", 1, "--batch-size", 32, "--model-dir", model_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    configs = yaml.safe_load((model_dir / "configs.yaml").read_text())
    assert (configs["architecture"], configs["augmentation"], configs["lr_schedule"], configs["learning_rate"],
            configs["weight_decay"], configs["mixed_precision"], configs["batch_size"], configs["keep_aspect_ratio"],
            configs["dropout"], configs["ctc_shortcut"]) == ("tutorial", "tutorial", "plateau", 0.0005, 0.0, "off", 32, True, 0.2,
                                                             0.0)
    assert "shortcut_loss" not in (model_dir / "history.csv").read_text()  # the tutorial's model alone, one output
    with zipfile.ZipFile(model_dir / "last.keras") as checkpoint:  # weight decay 0: plain Adam, as the tutorial trained
        optimizer = json.loads(checkpoint.read("config.json"))["compile_config"]["optimizer"]
    assert (optimizer["class_name"], optimizer["config"]["weight_decay"]) == ("Adam", None)
    model = ImageToWordModel(str(model_dir / "model.onnx"))
    assert model.probabilities(np.zeros((1, 32, 128, 3), np.float32)).shape[1] == 64  # the tutorial's model: 4 rows x 16 columns

    # Inference resizes as training did: a square word is scaled to the height, padded with white.
    resized = model.resize(np.zeros((10, 10, 3), np.uint8))
    assert resized.shape == (32, 128, 3)
    assert (resized[:, :40] == 255).all() and (resized[:, 50:78] == 0).all() and (resized[:, -40:] == 255).all()


@pytest.mark.slow
def test_the_default_ctc_shortcut_trains_resumes_and_stays_out_of_the_onnx_model(demo_dir, tmp_path):
    import pandas as pd

    from htr.recognizer import ImageToWordModel

    model_dir = tmp_path / "shortcut"  # the defaults train with a CTC shortcut, weight 0.1
    result = run_script("train.py", "--data-dir", demo_dir, "--epochs", 2, "--batch-size", 8, "--model-dir", model_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    result = run_script("train.py", "--resume", model_dir, "--epochs", 3)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    history = pd.read_csv(model_dir / "history.csv")
    assert list(history.epoch) == [0, 1, 2]
    # Both outputs learn, the shortcut's loss counted at a tenth; CER is the reader's.
    assert history.shortcut_loss.iloc[-1] < history.shortcut_loss.iloc[0]
    # Keras averages each of the three over the epoch's batches on its own, so they agree closely, not exactly.
    assert np.allclose(history.loss, history.output_loss + 0.1 * history.shortcut_loss, rtol=0.03)
    assert "val_CER" in history and "val_shortcut_CER" not in history
    # The exported model is the reader alone: one output, a character distribution per column.
    model = ImageToWordModel(str(model_dir / "model.onnx"))
    assert len(model.output_names) == 1
    probabilities = model.probabilities(np.zeros((2, 32, 128, 3), np.float32))
    assert probabilities.shape == (2, 32, len(model.vocab) + 1)
    assert np.allclose(probabilities.sum(axis=-1), 1, atol=1e-4)


def test_the_tutorial_preset_keeps_its_old_name_seed():
    from htr.training.command_line import parse_train_args
    assert parse_train_args(["--preset", "seed"]).preset == "tutorial"


@pytest.mark.slow
def test_bench_budget_refuses_a_malformed_variant_before_training(tmp_path):
    (tmp_path / "splits").mkdir()
    for part in ("train", "valid"):
        (tmp_path / "splits" / f"{part}.txt").write_text("a01-000u\n")
    result = run_script("benchmarks.quality", "budget", "--minutes", 1, "--data-dir", tmp_path, "--variant", "no colon here")
    assert result.returncode != 0 and 'write it as "NAME: TRAIN.PY FLAGS"' in result.stderr
    assert "[tutorial preset]" not in result.stdout  # refused before the first run started


def test_an_older_configs_yaml_reads_as_its_run_trained(tmp_path):
    """configs.yaml from before a setting existed: the value that run trained with, and the
    tutorial preset's old name, seed, read as tutorial (for --resume and --init-from alike)."""
    from configs import load_configs
    path = tmp_path / "configs.yaml"
    path.write_text("preset: seed\narchitecture: seed\naugmentation: seed\nvocab: ab\nheight: 32\nwidth: 128\n")
    configs = load_configs(path)
    assert (configs.preset, configs.architecture, configs.augmentation) == ("tutorial", "tutorial", "tutorial")
    assert (configs.weight_decay, configs.ctc_shortcut, configs.warmup, configs.freeze_cnn, configs.crop) == (
        0.0, 0.0, 0.03, 0.0, "columns")


def test_resume_takes_only_what_may_change_anew(capsys):
    from htr.training.command_line import parse_train_args
    args = parse_train_args(["--resume", "run", "--epochs", "3", "--minutes", "1", "--strategy", "default",
                             "--workers", "2", "--xla", "off", "--peer-timeout", "5"])
    assert (args.epochs, args.workers, args.peer_timeout) == (3, 2, 5)
    for flag in ("--dropout=0.2", "--mixed-precision=off", "--seed=1", "--data-dir=x", "--model-dir=x"):
        with pytest.raises(SystemExit):
            parse_train_args(["--resume", "run", flag])
        assert f"drop {flag.split('=')[0]}" in capsys.readouterr().err
