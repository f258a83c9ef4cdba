"""The input pipeline (data_pipeline.py, train.py's data_provider): worker processes, the image
cache, augmentation seeded per sample; python -m benchmarks.speed pipeline; train.py --demo-words."""
import glob
import hashlib
import os
import re
import shutil

import cv2
import numpy as np
import pytest

from conftest import run_script


def demo_rows(dataset_dir):
    from htr.data.iam import parse_words_txt
    return [(path, label) for _, path, label in parse_words_txt(dataset_dir)]


def make_provider(rows, workers, shuffle=True, seed=1):
    from configs import ModelConfigs
    from htr.data.pipeline import data_provider, training_augmentors
    configs = ModelConfigs()
    configs.vocab = "".join(sorted(set("".join(label for _, label in rows))))
    configs.max_text_length = max(len(label) for _, label in rows)
    return data_provider(rows, configs, 8, training_augmentors("photos"), shuffle=shuffle, seed=seed, workers=workers)


def epochs_of_batches(provider, epochs=2):
    """The batches as fit() takes them: Keras's PyDataset adapter, with its worker processes."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter
    adapter, batches = PyDatasetAdapter(provider), []
    for _ in range(epochs):
        adapter.on_epoch_begin()
        batches.append([(images, labels["output"]) for images, labels in adapter.get_numpy_iterator()])
        adapter.on_epoch_end()
    return batches


def assert_same_batches(first, second):
    assert [len(epoch) for epoch in first] == [len(epoch) for epoch in second]
    for epoch_a, epoch_b in zip(first, second):
        for (images_a, labels_a), (images_b, labels_b) in zip(epoch_a, epoch_b):
            np.testing.assert_array_equal(images_a, images_b)
            np.testing.assert_array_equal(labels_a, labels_b)


def test_any_number_of_workers_trains_on_the_same_batches_new_ones_each_epoch(demo_dir):
    rows = demo_rows(demo_dir)
    one, two = epochs_of_batches(make_provider(rows, workers=1)), epochs_of_batches(make_provider(rows, workers=2))
    assert len(one[0]) == 12  # 96 words in batches of 8
    assert_same_batches(one, two)
    # Each epoch has its own order and its own augmentation of the same images.
    labels = [np.concatenate([labels for _, labels in epoch]) for epoch in one]
    assert not np.array_equal(labels[0], labels[1]) and sorted(map(tuple, labels[0])) == sorted(map(tuple, labels[1]))
    unshuffled = epochs_of_batches(make_provider(rows, workers=2, shuffle=False))
    np.testing.assert_array_equal(unshuffled[0][0][1], unshuffled[1][0][1])
    assert not np.array_equal(unshuffled[0][0][0], unshuffled[1][0][0])
    # Another seed, other augmentation.
    assert not np.array_equal(epochs_of_batches(make_provider(rows, workers=1, shuffle=False, seed=2), 1)[0][0][0],
                              unshuffled[0][0][0])


def test_images_are_read_once_into_memory(demo_dir, tmp_path):
    rows = demo_rows(demo_dir)
    copy = str(tmp_path / "copy")
    shutil.copytree(demo_dir, copy)
    copied_rows = [(path.replace(demo_dir, copy), label) for path, label in rows]
    provider = make_provider(copied_rows, workers=2)
    # The cache holds what OpenCV reads in colour (grayscale PNGs in one channel).
    for index, (path, _) in enumerate(copied_rows):
        np.testing.assert_array_equal(provider.cache.image(index), cv2.imread(path))
    shutil.rmtree(os.path.join(copy, "words"))  # no epoch reads an image file again
    assert_same_batches(epochs_of_batches(provider), epochs_of_batches(make_provider(rows, workers=1)))


def test_an_unreadable_image_is_one_clear_line(demo_dir, tmp_path):
    from htr.data.iam import DatasetError
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=re.escape(str(bad))):
        make_provider(demo_rows(demo_dir)[:3] + [(str(bad), "x")], workers=1)


def test_demo_set_is_the_same_with_any_number_of_processes(tmp_path):
    from htr.data.demo import write_demo_set

    def contents(folder):
        files = sorted(glob.glob(os.path.join(folder, "**", "*"), recursive=True))
        return hashlib.sha1(b"".join(open(f, "rb").read() for f in files if os.path.isfile(f))).hexdigest()
    write_demo_set(str(tmp_path / "one"), 90, seed=3, processes=1)
    write_demo_set(str(tmp_path / "two"), 90, seed=3, processes=2)
    assert contents(tmp_path / "one") == contents(tmp_path / "two")
    assert len(open(tmp_path / "one" / "words.txt").read().splitlines()) == 90 + 7  # words + header


@pytest.mark.slow
def test_bench_pipeline_short_run(demo_dir):
    result = run_script("benchmarks.speed", "pipeline", "--data-dir", demo_dir, "--workers", 2, "--batches", 5, "--steps", 2)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert re.search(r"model alone, training on in-memory batches .*: \d+ samples/s$", lines[-3])
    assert re.fullmatch(r"  pipeline alone, 1 worker: \d+ samples/s", lines[-2])
    assert re.fullmatch(r"  pipeline alone, 2 workers \(\d+\.\d\dx one worker\): \d+ samples/s", lines[-1])


@pytest.mark.slow
def test_train_on_a_demo_set_of_n_words_with_two_workers(tmp_path):
    model_dir = tmp_path / "model"
    result = run_script("train.py", "--dataset", "demo", "--demo-words", 64, "--workers", 2, "--epochs", 1,
                        "--batch-size", 8, "--model-dir", model_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    words = [line for line in open(tmp_path / "Datasets" / "Demo_Words" / "words.txt") if not line.startswith("#")]
    assert len(words) == 64
    assert "Data pipeline: 2 worker processes; 64 images decoded into memory" in result.stdout
    assert (model_dir / "model.onnx").is_file()


def test_lines_and_words_are_batched_apart():
    """Each full batch holds lines or words, not both (a word would be padded to a line's width)."""
    from htr.data.pipeline import one_kind_per_batch
    is_line = np.array([True] * 13 + [False] * 20)
    order = one_kind_per_batch(np.random.default_rng(0).permutation(33), is_line, 8, np.random.default_rng(1))
    assert sorted(order) == list(range(33))
    batches = [order[i:i + 8] for i in range(0, 33, 8)]
    assert len(batches) == 5  # as many as without the grouping: the last one short
    assert all(len(set(is_line[batch])) == 1 for batch in batches[:3])
    assert sorted(is_line[batch].sum() for batch in batches[:3]) == [0, 0, 8]
    words_only = np.zeros(33, dtype=bool)
    same = np.random.default_rng(0).permutation(33)
    np.testing.assert_array_equal(one_kind_per_batch(same, words_only, 8, np.random.default_rng(1)), same)
