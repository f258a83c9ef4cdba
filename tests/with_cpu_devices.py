"""Runs a script with the CPU split into N logical devices, so MirroredStrategy has several
devices to mirror over on a machine without GPUs (the tests' stand-in for a multi-GPU box):

    python tests/with_cpu_devices.py 2 train.py --strategy mirrored ...

TensorFlow fixes its devices when its runtime starts, so the split happens here, before the
script runs; the script itself needs no test-only code.
"""
import os
import runpy
import sys

import tensorflow as tf

count, script = int(sys.argv[1]), sys.argv[2]
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
sys.argv = sys.argv[2:]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
