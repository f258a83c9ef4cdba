"""train.py under tf.distribute on a machine without GPUs: MirroredStrategy over the CPU split
into two logical devices, and a two-worker MultiWorkerMirroredStrategy job on 127.0.0.1."""
import json
import os
import socket
import subprocess
import sys
import zipfile

import pytest
import yaml

from conftest import REPO, run_script


def history_rows(model_dir):
    with open(os.path.join(model_dir, "history.csv")) as f:
        return f.read().splitlines()[1:]


def batch_norm_synchronized(keras_file):
    """Each BatchNormalization layer's `synchronized` setting, as saved in a .keras file."""
    with zipfile.ZipFile(keras_file) as z:
        layers = json.loads(z.read("config.json"))["config"]["layers"]
    return [layer["config"]["synchronized"] for layer in layers if layer["class_name"] == "BatchNormalization"]


def test_mirrored_strategy_on_two_cpu_devices_with_bfloat16(demo_dir, tmp_path):
    model_dir = tmp_path / "model"
    result = run_script(os.path.join("tests", "with_cpu_devices.py"), 2, "train.py", "--strategy", "mirrored",
                        "--mixed-precision", "bfloat16", "--data-dir", demo_dir, "--epochs", 1, "--batch-size", 4,
                        "--model-dir", model_dir, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "MirroredStrategy: 2 replicas, global batch 8 (4 per replica)" in result.stdout

    with open(model_dir / "configs.yaml") as f:
        configs = yaml.safe_load(f)
    assert (configs["batch_size"], configs["mixed_precision"]) == (4, "bfloat16")  # per replica, as given
    assert len(history_rows(model_dir)) == 1
    # The replicas normalized with the statistics of the whole global batch (see distribute.py).
    assert set(batch_norm_synchronized(model_dir / "model.keras")) == {True}

    # The export is a float32 model whatever the training precision, checked against Keras as on one device.
    import onnxruntime as ort
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.type for i in session.get_inputs()] == [o.type for o in session.get_outputs()] == ["tensor(float)"]
    with open(model_dir / "onnx_check.json") as f:
        assert json.load(f)["max_abs_difference"] <= 1e-4


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_this_machine_only_the_chief_writes(demo_dir, tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    model_dirs = [tmp_path / "chief_model", tmp_path / "worker_model"]
    temp_dirs = [tmp_path / "chief_tmp", tmp_path / "worker_tmp"]
    logs = [tmp_path / "chief.log", tmp_path / "worker.log"]
    processes = []
    try:
        for index in (0, 1):
            temp_dirs[index].mkdir()
            env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
                   "TMPDIR": str(temp_dirs[index]),
                   "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
            # The same command on every worker, as on a real cluster; worker 0 is the chief.
            command = [sys.executable, os.path.join(REPO, "train.py"), "--strategy", "multiworker", "--data-dir",
                       demo_dir, "--epochs", "1", "--batch-size", "4", "--model-dir", str(model_dirs[index])]
            with open(logs[index], "w") as log:  # a file, not a pipe: a full pipe would stall one worker, and both
                processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
        for process in processes:
            process.wait(timeout=400)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    outputs = [log.read_text() for log in logs]
    assert [p.returncode for p in processes] == [0, 0], "\n\n".join(output[-3000:] for output in outputs)
    assert all("MultiWorkerMirroredStrategy: 2 replicas, global batch 8 (4 per replica)" in o for o in outputs)
    assert "this worker keeps no files" in outputs[1]

    chief_dir, worker_dir = model_dirs
    for name in ["configs.yaml", "train.csv", "history.csv", "last.keras", "model.keras", "model.onnx", "logs"]:
        assert os.path.exists(chief_dir / name), name
    assert len(history_rows(chief_dir)) == 1
    assert not worker_dir.exists()
    assert not os.listdir(temp_dirs[1])  # the worker's temporary folder is gone

    result = run_script("inferenceModel.py", "--model", chief_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Average CER:" in result.stdout


@pytest.mark.parametrize("args, error", [
    (["--strategy", "mirrored"], "--strategy mirrored needs at least 2 GPUs, this machine has 0"),
    (["--strategy", "multiworker"], "TF_CONFIG environment variable, which is not set"),
    (["--mixed-precision", "float16"], "--mixed-precision float16 needs a GPU"),
    (["--strategy", "multiworker", "--minutes", "5"], "--minutes cannot be used with --strategy multiworker"),
])
def test_impossible_settings_get_one_clear_line(tmp_path, args, error):
    env = {key: value for key, value in os.environ.items() if key != "TF_CONFIG"}
    env.update(PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), *args, "--model-dir", str(tmp_path / "m")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode in (1, 2) and "Traceback" not in result.stderr
    assert error in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "m").exists()


def test_jit_compile_stops_with_the_op_xla_cannot_compile(demo_dir, tmp_path):
    result = run_script("train.py", "--jit-compile", "--data-dir", demo_dir, "--epochs", 1, "--model-dir", tmp_path / "m")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--jit-compile: XLA cannot compile CTCGreedyDecoder" in result.stderr.strip().splitlines()[-1]
