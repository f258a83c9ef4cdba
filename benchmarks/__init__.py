"""Benchmarks, run from the repository root: `python -m benchmarks.speed --help` (inference, training
and input-pipeline speed) and `python -m benchmarks.quality --help` (photos, a training budget, pages)."""
