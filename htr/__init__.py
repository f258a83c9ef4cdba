"""The library behind the tutorial scripts (docs/architecture.md has the map).

Importing it first sets TensorFlow's start-up options, which TensorFlow reads once, when it is
first imported: every entry point (train.py, the benchmarks, the tests) imports htr before Keras."""
import os
import sys

if sys.version_info < (3, 11, 4):  # tarfile's extraction filters, which htr.data.iam relies on to extract safely
    sys.exit(f"error: this project needs Python 3.11.4 or newer; this is {sys.version.split()[0]}")

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the tutorial output
# TensorFlow uses its oneDNN CPU kernels by default only on CPUs with AVX-512 extensions; on the
# others (most laptops, AMD before Zen 4) it falls back to Eigen's, which train this model at about
# half the speed. Set it to 0 to opt out.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
# XLA auto-clustering (--xla) clusters ops on a CPU only with this flag, read when TensorFlow
# starts; it changes nothing while --xla is off.
os.environ.setdefault("TF_XLA_FLAGS", "--tf_xla_cpu_global_jit")

ASSETS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
