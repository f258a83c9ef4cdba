"""Training survives Ctrl-C, SIGTERM, kill -9, NaN losses, unwritable folders and full disks."""
import csv
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, run_script

pytestmark = pytest.mark.slow  # end to end: every test runs a script or trains


def history_epochs(model_dir):
    path = os.path.join(model_dir, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [int(row["epoch"]) for row in csv.DictReader(f)]


def start_training(*args):
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, os.path.join(REPO, "train.py"), *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def signal_after_epochs(process, model_dir, epochs, signum):
    """Waits until `epochs` epochs are logged, lets the next one start, then sends `signum`."""
    deadline = time.monotonic() + 300
    while len(history_epochs(model_dir)) < epochs:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    time.sleep(0.5)
    process.send_signal(signum)
    return process.communicate(timeout=300)


def test_interrupt_kill_and_resume(demo_dir, tmp_path):
    import keras
    import htr.training.ctc  # noqa: F401  registers the loss and metric for load_model

    model_dir = str(tmp_path / "model")
    epochs = 8

    # Ctrl-C: stops after the batch, saves a resumable checkpoint, exports the best epoch, exits non-zero.
    process = start_training("--data-dir", demo_dir, "--epochs", epochs, "--batch-size", 2, "--model-dir", model_dir)
    _, stderr = signal_after_epochs(process, model_dir, 1, signal.SIGINT)
    assert process.returncode == 1
    assert "SIGINT received" in stderr and f"--resume {model_dir}" in stderr and "Traceback" not in stderr
    assert os.path.isfile(os.path.join(model_dir, "model.onnx"))
    keras.models.load_model(os.path.join(model_dir, "last.keras"))
    assert not [f for f in os.listdir(model_dir) if ".tmp" in f]

    # SIGTERM, as a scheduler or `docker stop` sends it, is handled the same way.
    process = start_training("--resume", model_dir, "--epochs", epochs)
    _, stderr = signal_after_epochs(process, model_dir, len(history_epochs(model_dir)) + 1, signal.SIGTERM)
    assert process.returncode == 1 and "SIGTERM received" in stderr and "Traceback" not in stderr

    # kill -9 (no chance to clean up): the last checkpoint written whole is still there.
    process = start_training("--resume", model_dir, "--epochs", epochs)
    signal_after_epochs(process, model_dir, len(history_epochs(model_dir)) + 1, signal.SIGKILL)
    keras.models.load_model(os.path.join(model_dir, "last.keras"))

    result = run_script("train.py", "--resume", model_dir, "--epochs", epochs)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Resuming" in result.stdout
    # Every epoch appears once, in order: none lost, none trained twice after its checkpoint.
    assert history_epochs(model_dir) == list(range(epochs))
    keras.models.load_model(os.path.join(model_dir, "model.keras"))


def test_resume_refuses_flags_that_would_change_the_run(tmp_path):
    result = run_script("train.py", "--resume", tmp_path, "--batch-size", 8)
    assert result.returncode == 2 and "drop --batch-size" in result.stderr
    result = run_script("train.py", "--resume", tmp_path)
    assert result.returncode == 1 and "no last.json" in result.stderr and "Traceback" not in result.stderr


def test_a_nan_loss_stops_the_run_without_saving_garbage(demo_dir, tmp_path):
    model_dir = tmp_path / "model"
    result = run_script("train.py", "--data-dir", demo_dir, "--epochs", 2, "--learning-rate", 1e30, "--model-dir", model_dir)
    assert result.returncode == 1
    assert "loss became nan" in result.stderr and "--learning-rate" in result.stderr and "Traceback" not in result.stderr
    assert not any(f.endswith((".keras", ".onnx")) for f in os.listdir(model_dir))


def test_an_unwritable_model_folder_fails_before_training(demo_dir, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = run_script("train.py", "--data-dir", demo_dir, "--model-dir", blocker / "model")
    assert result.returncode == 1
    assert "cannot write to the model folder" in result.stderr and "Traceback" not in result.stderr
    assert "Epoch 1" not in result.stdout


@pytest.fixture
def small_disk(tmp_path):
    """A 150 MB file system of its own (tmpfs), so filling it harms nothing else; needs root."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150m", "tmpfs", str(mount_point)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_fails_clearly_and_keeps_the_last_good_checkpoint(demo_dir, small_disk):
    import keras
    import htr.training.ctc  # noqa: F401  registers the loss and metric for load_model

    # Too little room to start: refused before training.
    filler = small_disk / "filler"
    subprocess.run(["fallocate", "-l", "120M", str(filler)], check=True)
    result = run_script("train.py", "--data-dir", demo_dir, "--model-dir", small_disk / "early")
    assert result.returncode == 1 and "MB free" in result.stderr and "Traceback" not in result.stderr
    filler.unlink()

    # The disk fills up during training: the next checkpoint write fails, the one before stays whole.
    model_dir = str(small_disk / "model")
    process = start_training("--data-dir", demo_dir, "--epochs", 20, "--batch-size", 2, "--model-dir", model_dir)
    deadline = time.monotonic() + 300
    while len(history_epochs(model_dir)) < 1:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    with open(filler, "wb") as f:  # fill every byte left
        try:
            while True:
                f.write(b"\0" * 2**20)
        except OSError:
            pass
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 1
    assert "No space left on device" in stderr and f"--resume {model_dir}" in stderr and "Traceback" not in stderr
    keras.models.load_model(os.path.join(model_dir, "last.keras"))
