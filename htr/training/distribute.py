"""Training on several GPUs or machines with TensorFlow's own tf.distribute (plus the few
Keras 3 gaps it needs filled), and mixed precision.

A strategy puts a copy of the model (a replica) on every device; each batch is split
between the replicas, their gradients are summed before every update, so all copies stay
identical. MirroredStrategy does this for the GPUs of one machine; MultiWorkerMirroredStrategy
for the GPUs (or CPUs) of every machine listed in the TF_CONFIG environment variable.
"""
import os
import sys
import threading
import time

import keras
import numpy as np
import tensorflow as tf


class DeviceSetupError(Exception):
    pass


class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """TensorFlow's multi-worker strategy, accepting the two kinds of reduce() call that Keras
    3.15's fit() makes and TensorFlow's version rejects (keras-team/keras#20585): a whole
    (images, labels) batch at once, and each step's scalar loss with axis=0. Each tensor is
    reduced on its own, scalars across workers only. Delete this class once Keras fixes it."""

    def reduce(self, reduce_op, value, axis):
        def reduce_one(v):
            scalar = self.experimental_local_results(v)[0].shape.rank == 0
            return super(MultiWorkerMirroredStrategy, self).reduce(reduce_op, v, None if scalar else axis)
        return tf.nest.map_structure(reduce_one, value)


def make_strategy(name):
    """--strategy NAME -> a tf.distribute strategy. Call it before anything else runs in
    TensorFlow: the multi-worker strategy sets up the runtime's collective ops at start-up."""
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise DeviceSetupError("--strategy multiworker reads the cluster from the TF_CONFIG environment variable, "
                                   "which is not set (see README: Training on several GPUs / machines)")
        return MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        # No GPU: the CPU's logical devices, when it was split into several (tests/with_cpu_devices.py).
        devices = gpus or tf.config.list_logical_devices("CPU")
        if len(devices) < 2:
            raise DeviceSetupError(f"--strategy mirrored needs at least 2 GPUs, this machine has {len(gpus)}; "
                                   "use --strategy auto (or default) to train on one device")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    return tf.distribute.get_strategy()  # the default: one device, no distribution


def writes_files(strategy):
    """Only the chief writes the model folder; in TF_CONFIG it is the task of type "chief",
    or worker 0 when there is none. Without a multi-worker strategy the one process is chief."""
    return strategy.extended.should_checkpoint


def share_batch_norm_statistics(model, strategy):
    """Keras 3's BatchNormalization updates its moving mean and variance on each replica from
    that replica's share of the batch and never averages them, so the replicas' copies drift
    apart and model.save() keeps replica 0's. synchronized=True computes the batch statistics
    over the whole global batch instead, so every replica makes the same update, the one a
    single device would make on the global batch. One replica needs no synchronizing."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = strategy.num_replicas_in_sync > 1


def set_mixed_precision(mode):
    """--mixed-precision auto|off|float16|bfloat16: layers compute in 16 bits and keep float32
    weights. float16 needs a GPU (on a CPU it is several times slower than float32); bfloat16
    suits CPUs with bfloat16 instructions and recent GPUs; auto picks bfloat16 where the hardware
    computes it natively (elsewhere it is emulated, and slower than float32), else off.
    The model's softmax output and the CTC loss stay float32 (see model.py, ctc.py).
    Returns the mode chosen."""
    if mode == "float16" and not tf.config.list_physical_devices("GPU"):
        raise DeviceSetupError("--mixed-precision float16 needs a GPU; on a CPU use --mixed-precision bfloat16")
    if mode == "auto":
        mode = "bfloat16" if has_native_bfloat16() else "off"
    keras.config.set_dtype_policy({"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}[mode])
    return mode


def has_native_bfloat16():
    """NVIDIA GPUs from Ampere (compute capability 8.0) on; without GPUs, x86 CPUs with the
    AVX512_BF16 or AMX instructions (Linux reports them in /proc/cpuinfo)."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return all(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) >= (8, 0)
                   for gpu in gpus)
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


# Every replica must get a share of every batch. TensorFlow splits a global batch into the
# replicas' per-replica batch size in order, so a short last batch (2,433 gw_words words in
# batches of 32 leave 1) fills the first replicas and leaves the others an empty share, which
# Keras' BatchNormalization cannot take: in training its synchronized all-reduce meets different
# shapes on different replicas, in validation it fails on its own ("Incompatible shapes: [24] vs.
# [0,32,128,3]"), and the run aborts. Two ways out, one for each kind of data:

class WholeGlobalBatches(keras.utils.PyDataset):
    """The training data without its last, partial global batch. What it costs: each epoch skips
    up to one global batch less one word, a different handful every epoch since the order is
    reshuffled, so over a run every word is still seen (one replica needs none of this).
    Filling the batch up instead would repeat words in that epoch and put the copies in the
    synchronized BatchNormalization's statistics."""

    def __init__(self, data, global_batch_size, words):
        super().__init__(workers=data.workers, use_multiprocessing=data.use_multiprocessing,
                         max_queue_size=data.max_queue_size)
        self.data, self.steps = data, words // global_batch_size
        if not self.steps:
            raise DeviceSetupError(f"{words} training words do not fill one global batch of {global_batch_size} "
                                   "(--batch-size x replicas); use a smaller --batch-size")

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.data[index]

    def on_epoch_end(self):
        self.data.on_epoch_end()


class PaddedLastBatch(keras.utils.PyDataset):
    """Validation data whose every batch has exactly global_batch_size images: the last, short
    one is filled up with copies of its first image that carry sample weight 0, the others
    weight 1. Every word is scored exactly once (CWERMetric in ctc.py counts words by weight),
    none is dropped. What it costs: the padding's compute, less than one batch per validation,
    and val_loss, which Keras averages over whole batches, reads lower by about the padding's
    share of the words (val_CER and val_WER, what the run watches, are exact)."""

    def __init__(self, data, global_batch_size):
        super().__init__(workers=data.workers, use_multiprocessing=data.use_multiprocessing,
                         max_queue_size=data.max_queue_size)
        self.data, self.global_batch_size = data, global_batch_size

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        images, labels = self.data[index]
        missing = self.global_batch_size - len(images)
        fill = lambda array: np.concatenate([array, np.repeat(array[:1], missing, axis=0)])
        weights = np.concatenate([np.ones(len(images), np.float32), np.zeros(missing, np.float32)])
        return fill(images), tf.nest.map_structure(fill, labels), weights

    def on_epoch_end(self):
        self.data.on_epoch_end()


class PeerWatchdog(keras.callbacks.Callback):
    """Ends this worker of a multi-worker run, with an error, when training made no progress for
    `seconds`: a peer that died or hangs leaves the others waiting in their next all-reduce
    forever, and a hung worker is worse than a failed one (a cluster's scheduler restarts failed
    jobs, not stuck ones). TensorFlow's coordination service notices a peer that stopped (killed,
    or exited) by its missing heartbeats and fails the next all-reduce (train.py then calls
    stop_worker); this watchdog covers the rest, a peer that hangs alive or a stall nothing
    reports. CommunicationOptions(timeout_seconds=...) would bound every collective op instead,
    but starts a thread for each (TensorFlow calls it a debugging aid). Progress is any finished batch, training or validation, from the first
    training step on; `seconds` must exceed the slowest step plus a whole validation pass,
    the first one's tracing included (train.py --peer-timeout)."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.last_progress = None  # armed by the first finished step: tracing it may take minutes on a busy CPU
        self.stopped = threading.Event()

    def on_train_begin(self, logs=None):
        threading.Thread(target=self.watch, daemon=True).start()

    def progress(self, *args, **kwargs):
        self.last_progress = time.monotonic()

    on_train_batch_end = on_test_batch_end = progress

    def on_epoch_begin(self, epoch, logs=None):
        if self.last_progress is not None:
            self.progress()

    on_epoch_end = on_epoch_begin

    def on_train_end(self, logs=None):
        self.stopped.set()

    def watch(self):
        while not self.stopped.wait(1.0):
            if self.last_progress is not None and time.monotonic() - self.last_progress > self.seconds:
                stop_worker(f"no training progress for {self.seconds:g} seconds: another worker of this "
                            "multi-worker run died or hangs")


def stop_worker(reason):
    """Ends this worker of a broken multi-worker run at once, with one clear line. Not sys.exit():
    once a peer is gone TensorFlow's shutdown waits for it, so a normal exit hangs too."""
    sys.stdout.flush()
    print(f"\nerror: {reason}. Stopping this worker too; restart every worker (with --resume and the chief's "
          "model folder to go on from its last epoch).", file=sys.stderr, flush=True)
    os._exit(1)
