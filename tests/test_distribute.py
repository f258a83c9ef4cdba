"""train.py under tf.distribute on a machine without GPUs: MirroredStrategy over the CPU split
into two logical devices, and a two-worker MultiWorkerMirroredStrategy job on 127.0.0.1."""
import json
import os
import socket
import subprocess
import sys
import time
import zipfile

import pytest
import yaml

from conftest import GW_WORDS, REPO, run_script

pytestmark = pytest.mark.slow  # end to end: every test runs a script or trains


@pytest.fixture(scope="module")
def uneven_demo_dir(tmp_path_factory):
    """81 training words (9 validation): at 2 replicas x 4 the last global batch holds 1 word, which
    gave the second replica an empty share and aborted the run (distribute.py)."""
    from htr.data.demo import generate_demo_words
    return generate_demo_words(str(tmp_path_factory.mktemp("uneven") / "Demo_Words"), num_words=90, seed=7)


def history_rows(model_dir):
    with open(os.path.join(model_dir, "history.csv")) as f:
        return f.read().splitlines()[1:]


def batch_norm_synchronized(keras_file):
    """Each BatchNormalization layer's `synchronized` setting, as saved in a .keras file."""
    with zipfile.ZipFile(keras_file) as z:
        layers = json.loads(z.read("config.json"))["config"]["layers"]
    return [layer["config"]["synchronized"] for layer in layers if layer["class_name"] == "BatchNormalization"]


def test_mirrored_strategy_on_two_cpu_devices_with_bfloat16(uneven_demo_dir, tmp_path):
    model_dir = tmp_path / "model"
    result = run_script(os.path.join("tests", "with_cpu_devices.py"), 2, "train.py", "--strategy", "mirrored",
                        "--mixed-precision", "bfloat16", "--data-dir", uneven_demo_dir, "--epochs", 1, "--batch-size", 4,
                        "--model-dir", model_dir, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "MirroredStrategy: 2 replicas, global batch 8 (4 per replica)" in result.stdout
    assert "split random: 81 train, 9 val" in result.stdout
    with open(model_dir / "training.json") as f:
        assert json.load(f)["samples"] == 80  # 10 whole global batches; the 81st word waits for another epoch

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


def start_workers(data_dir, tmp_path, *args):
    """Two train.py workers of one MultiWorkerMirroredStrategy run on 127.0.0.1, the same command on
    each as on a real cluster (worker 0 is the chief); their output goes to worker0.log, worker1.log."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    for index in (0, 1):
        (tmp_path / f"worker{index}_tmp").mkdir()
        env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
               "TMPDIR": str(tmp_path / f"worker{index}_tmp"),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        command = [sys.executable, os.path.join(REPO, "train.py"), "--strategy", "multiworker", "--data-dir",
                   data_dir, "--batch-size", "4", "--model-dir", str(tmp_path / f"worker{index}_model"), *args]
        with open(tmp_path / f"worker{index}.log", "w") as log:  # a file, not a pipe: a full pipe would stall a worker
            processes.append(subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
    return processes


def stop(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_two_workers_on_this_machine_only_the_chief_writes(uneven_demo_dir, tmp_path):
    # In float32 fit() validates, in 16 bits Float32Validation does (the mirrored test above): both see the padding.
    processes = start_workers(uneven_demo_dir, tmp_path, "--epochs", "1", "--mixed-precision", "off")
    try:
        for process in processes:
            process.wait(timeout=400)
    finally:
        stop(processes)
    outputs = [(tmp_path / f"worker{index}.log").read_text() for index in (0, 1)]
    assert [p.returncode for p in processes] == [0, 0], "\n\n".join(output[-3000:] for output in outputs)
    assert all("MultiWorkerMirroredStrategy: 2 replicas, global batch 8 (4 per replica)" in o for o in outputs)
    assert "this worker keeps no files" in outputs[1]

    chief_dir, worker_dir = tmp_path / "worker0_model", tmp_path / "worker1_model"
    for name in ["configs.yaml", "train.csv", "history.csv", "last.keras", "model.keras", "model.onnx", "logs"]:
        assert os.path.exists(chief_dir / name), name
    assert len(history_rows(chief_dir)) == 1
    with open(chief_dir / "training.json") as f:
        assert json.load(f)["samples"] == 80  # 81 words: the partial last global batch is left out
    assert not worker_dir.exists()
    assert not os.listdir(tmp_path / "worker1_tmp")  # the worker's temporary folder is gone

    result = run_script("inferenceModel.py", "--model", chief_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Average CER:" in result.stdout


def test_a_worker_whose_peer_died_stops_with_an_error(uneven_demo_dir, tmp_path):
    """A killed worker must not leave the other one waiting forever in its next all-reduce."""
    processes = start_workers(uneven_demo_dir, tmp_path, "--epochs", "100", "--peer-timeout", "60")
    chief, worker = processes
    try:
        deadline = time.monotonic() + 400
        while "Epoch 2/" not in (tmp_path / "worker1.log").read_text():  # both are training
            assert time.monotonic() < deadline and worker.poll() is None, (tmp_path / "worker1.log").read_text()[-3000:]
            time.sleep(1)
        worker.kill()
        killed = time.monotonic()
        chief.wait(timeout=180)
        waited = time.monotonic() - killed
    finally:
        stop(processes)
    output = (tmp_path / "worker0.log").read_text()
    assert chief.returncode == 1 and waited < 120, output[-3000:]
    last_line = output.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and "Stopping this worker too; restart every worker" in last_line


VALIDATION_SCRIPT = """
import json, sys
import keras, numpy as np, tensorflow as tf
from configs import ModelConfigs
from htr.training.distribute import PaddedLastBatch, share_batch_norm_statistics
from model import compile_model

class RandomWords(keras.utils.PyDataset):
    def __init__(self, words, batch_size):
        super().__init__()
        rng = np.random.default_rng(0)
        self.images = rng.uniform(0, 255, (words, 32, 128, 3)).astype(np.float32)
        self.labels = np.full((words, 6), 5)  # vocabulary "abcde", padded with 5
        for row, length in zip(self.labels, rng.integers(1, 7, words)):
            row[:length] = rng.integers(0, 5, length)
        self.batch_size = batch_size

    def __len__(self):
        return -(-len(self.images) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.images[part], {"output": self.labels[part], "shortcut": self.labels[part]}

configs = ModelConfigs()
configs.vocab, configs.max_text_length = "abcde", 6
keras.utils.set_random_seed(1)
one_device = compile_model(configs)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    two_replicas = compile_model(configs)
share_batch_norm_statistics(two_replicas, strategy)
two_replicas.set_weights(one_device.get_weights())
words = RandomWords(9, 8)  # a batch of 8, then 1 word
print(json.dumps({"one": one_device.evaluate(words, verbose=0, return_dict=True),
                  "two": two_replicas.evaluate(PaddedLastBatch(words, 8), verbose=0, return_dict=True)}))
"""


def test_validation_on_two_replicas_scores_every_word_once(tmp_path):
    """An untrained model reads random text, so each word's CER differs: a word left out or counted
    twice would change the average."""
    script = tmp_path / "validate.py"
    script.write_text(VALIDATION_SCRIPT)
    result = run_script(os.path.join("tests", "with_cpu_devices.py"), 2, script, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["one"]["CER"] not in (0.0, 1.0)
    for name in ("CER", "WER"):
        assert scores["two"][name] == pytest.approx(scores["one"][name], abs=1e-6), scores


@pytest.mark.skipif(not os.path.isdir(GW_WORDS), reason="../shared/data/gw_words (real handwriting) is not here")
def test_mirrored_strategy_on_the_real_set(tmp_path):
    """2,433 training words at 2 x 64: the last global batch holds 1 word, which aborted the run."""
    model_dir = tmp_path / "model"
    result = run_script(os.path.join("tests", "with_cpu_devices.py"), 2, "train.py", "--strategy", "mirrored",
                        "--data-dir", GW_WORDS, "--epochs", 1, "--batch-size", 64, "--model-dir", model_dir, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with open(model_dir / "training.json") as f:
        assert json.load(f)["samples"] == 2432
    assert len(history_rows(model_dir)) == 1


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


def test_xla_compiles_what_it_can_of_the_training_step(demo_dir, tmp_path):
    """--xla on, here on a CPU: auto-clustering compiles parts of the step with XLA (TensorFlow logs
    it at INFO level), leaves the CTC decoder and LSTM to TensorFlow, and the run trains and exports."""
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "0"}
    env.pop("TF_CONFIG", None)
    result = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), "--xla", "on", "--data-dir", demo_dir,
                             "--epochs", "1", "--model-dir", str(tmp_path / "m")],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "XLA on" in result.stdout
    assert "Compiled cluster using XLA" in result.stderr
    assert (tmp_path / "m" / "model.onnx").is_file()
