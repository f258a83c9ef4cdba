"""Training on several GPUs or machines with TensorFlow's own tf.distribute (plus the few
Keras 3 gaps it needs filled), and mixed precision.

A strategy puts a copy of the model (a replica) on every device; each batch is split
between the replicas, their gradients are summed before every update, so all copies stay
identical. MirroredStrategy does this for the GPUs of one machine; MultiWorkerMirroredStrategy
for the GPUs (or CPUs) of every machine listed in the TF_CONFIG environment variable.
"""
import os

import keras
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
