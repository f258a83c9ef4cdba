"""Your own handwriting: train.py on a labels.csv folder, and --init-from a trained model (fine-tuning)."""
import csv
import io
import json
import os
import re

import cv2
import numpy as np
import onnx
import pytest
import yaml

from conftest import REPO, run_script
from htr.data.iam import DatasetError, parse_words_txt
from htr.data.labels_csv import MIN_ROWS, parse_labels_csv, split_labels_csv

NAMES = os.path.join(REPO, "..", "shared", "data", "names_finetune")


def write_labels_csv(path, rows, header=("image_path", "label")):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


@pytest.fixture(scope="module")
def two_word_folder(demo_dir, tmp_path_factory):
    """labels.csv + images/: pairs of demo words side by side as JPEGs in a folder whose name has a
    space, labelled "first second" (a space the demo model never saw); one label has an é."""
    folder = tmp_path_factory.mktemp("own") / "my words"
    (folder / "images").mkdir(parents=True)
    words = parse_words_txt(demo_dir)
    rows = []
    for i in range(0, 60, 2):
        (_, first_path, first), (_, second_path, second) = words[i], words[i + 1]
        first_image, second_image = cv2.imread(first_path), cv2.imread(second_path)
        height = max(first_image.shape[0], second_image.shape[0])
        image = np.full((height, first_image.shape[1] + 20 + second_image.shape[1], 3), 255, np.uint8)
        image[:first_image.shape[0], :first_image.shape[1]] = first_image
        image[:second_image.shape[0], first_image.shape[1] + 20:] = second_image
        cv2.imwrite(str(folder / "images" / f"pair {i}.jpg"), image)
        rows.append((f"images/pair {i}.jpg", f"{first} {second}" if i else "café noir"))
    write_labels_csv(folder / "labels.csv", rows)
    return folder


def test_bad_rows_and_images_are_skipped_and_listed(tmp_path, capsys):
    good = [(f"images/{i}.png", f"word{i}") for i in range(MIN_ROWS)]
    (tmp_path / "images").mkdir()
    for path, _ in good:
        cv2.imwrite(str(tmp_path / path), np.full((20, 60, 3), 255, np.uint8))
    (tmp_path / "images" / "empty.png").write_bytes(b"")
    (tmp_path / "images" / "text.png").write_bytes(b"not an image at all")
    lines = ["image_path,label"] + [f"{path},{label}" for path, label in good] + [
        "images/nowhere.png,missing",    # line 12
        "images/empty.png,empty",        # 13
        "images/text.png,garbage",       # 14
        "images/0.png,",                 # 15: no label
        "images/0.png,   ",              # 16: only spaces
        "images/0.png",                  # 17: no label column at all
        ",nolabel",                      # 18: no image path
    ]
    data = ("\n".join(lines) + "\n").encode() + "images/1.png,Gr\xfc\xdfe\n".encode("latin-1")  # 19: not UTF-8
    (tmp_path / "labels.csv").write_bytes(data)

    rows = parse_labels_csv(str(tmp_path / "labels.csv"))
    assert [(written, label) for written, _, label in rows] == good
    assert all(os.path.isfile(path) for _, path, _ in rows)
    out = capsys.readouterr().out
    assert "18 rows read, 10 kept" in out
    assert "skipped row without a label: 3 (line 15, line 16, line 17)" in out
    assert "skipped row without an image_path: 1 (line 18)" in out
    assert "skipped row not valid UTF-8 (save the file as UTF-8): 1 (line 19)" in out
    assert "skipped image missing: 1 (images/nowhere.png)" in out
    assert "skipped image empty (0 bytes): 1 (images/empty.png)" in out
    assert "skipped image unreadable: 1 (images/text.png)" in out


def test_labels_keep_spaces_and_unicode_and_the_random_split_follows_the_seed(tmp_path):
    (tmp_path / "a.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1].tobytes())
    labels = [f"Zoë {i}" for i in range(18)] + ['"New, York"', "  e\u0301t\u00e9  "]  # é twice: decomposed, composed
    (tmp_path / "labels.csv").write_text("\ufeff" + "image_path,label\n" + "".join(f"a.png,{label}\n" for label in labels),
                                         encoding="utf-8")  # a byte-order mark, as spreadsheets write
    split = split_labels_csv([str(tmp_path / "labels.csv")], seed=3)
    assert (len(split["train"]), len(split["val"])) == (18, 2)
    read = sorted(label for part in ("train", "val") for _, label in split[part])
    assert read == sorted(labels[:18] + ["New, York", "\u00e9t\u00e9"])
    assert split == split_labels_csv([str(tmp_path / "labels.csv")], seed=3)
    assert split != split_labels_csv([str(tmp_path / "labels.csv")], seed=4)


def broken_csv(folder, good_rows):
    """folder/labels.csv: the good (image_path, label) rows, then the same broken rows whatever the
    images are: no label, a tab in the label, a missing image and a row that is not UTF-8."""
    rows = [("image_path", "label"), *good_rows, (good_rows[0][0], ""), (good_rows[0][0], "two\twords"),
            ("images/nowhere.png", "not here")]  # no label, a tab in the label, a missing image
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    (folder / "labels.csv").write_bytes(text.getvalue().encode() + f"{good_rows[1][0]},Gr\xfc\xdfe Stra\xdfe\n".encode("latin-1"))
    return str(folder / "labels.csv")


def test_a_line_csv_with_broken_rows_gets_the_same_errors_as_words(tmp_path, capsys):
    from htr.data.demo import generate_demo_lines
    lines_dir = generate_demo_lines(str(tmp_path / "lines"), num_lines=MIN_ROWS, seed=2)
    with open(os.path.join(lines_dir, "labels.csv"), encoding="utf-8", newline="") as f:
        line_rows = [tuple(row) for row in list(csv.reader(f))[1:]]
    assert all(" " in label for _, label in line_rows)
    words_dir = tmp_path / "words"
    (words_dir / "images").mkdir(parents=True)
    word_rows = [(f"images/{i:05d}.png", f"word{i}") for i in range(MIN_ROWS)]
    for path, _ in word_rows:
        cv2.imwrite(str(words_dir / path), np.full((20, 60), 255, np.uint8))

    words_csv = broken_csv(words_dir, word_rows)
    lines_csv = broken_csv(tmp_path / "lines", [(path, f"  {label} ") for path, label in line_rows])
    capsys.readouterr()
    words = parse_labels_csv(words_csv)
    words_summary = capsys.readouterr().out.replace(words_csv, "labels.csv")
    lines = parse_labels_csv(lines_csv)
    lines_summary = capsys.readouterr().out.replace(lines_csv, "labels.csv")
    assert lines_summary == words_summary
    assert [(path, label) for path, _, label in lines] == line_rows  # spaces inside kept, at the ends stripped
    assert len(words) == MIN_ROWS
    n = MIN_ROWS + 1  # the last good row's line: the header is line 1
    assert f"{MIN_ROWS + 4} rows read, {MIN_ROWS} kept" in lines_summary
    assert f"skipped row without a label: 1 (line {n + 1})" in lines_summary
    assert f"skipped row label holds a tab or line break: 1 (line {n + 2})" in lines_summary
    assert f"skipped row not valid UTF-8 (save the file as UTF-8): 1 (line {n + 4})" in lines_summary
    assert "skipped image missing: 1 (images/nowhere.png)" in lines_summary


@pytest.mark.parametrize("content, message", [
    ("path,text\na.png,word\n", "needs a first line naming the columns image_path,label (it has 'path,text')"),
    ("image_path,label\n" + "a.png,word\n" * 3, "3 usable rows (see the summary above); at least 10 are needed"),
])
@pytest.mark.slow
def test_a_csv_train_py_cannot_use_stops_the_run_with_one_line(tmp_path, content, message):
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((8, 8), np.uint8))
    (tmp_path / "labels.csv").write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=re.escape(message)):
        parse_labels_csv(str(tmp_path / "labels.csv"))
    result = run_script("train.py", "--data-dir", tmp_path, "--model-dir", tmp_path / "model")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    last_line = result.stderr.strip().splitlines()[-1]  # before it, only TensorFlow's start-up logging
    assert last_line.startswith(f"error: {tmp_path / 'labels.csv'}") and message in last_line
    assert not (tmp_path / "model" / "model.keras").exists()


@pytest.mark.slow
def test_training_on_a_labels_csv_folder(two_word_folder, tmp_path):
    model_dir = tmp_path / "model"
    result = run_script("train.py", "--data-dir", two_word_folder, "--epochs", 2, "--batch-size", 8, "--model-dir", model_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "labels.csv: 30 rows read, 30 kept" in result.stdout and "split random: 27 train, 3 val" in result.stdout

    with open(model_dir / "configs.yaml", encoding="utf-8") as f:
        configs = yaml.safe_load(f)
    with open(two_word_folder / "labels.csv", encoding="utf-8") as f:
        labels = [row["label"] for row in csv.DictReader(f)]
    assert configs["vocab"] == "".join(sorted(set("".join(labels)))) and " " in configs["vocab"] and "é" in configs["vocab"]
    metadata = {p.key: json.loads(p.value) for p in onnx.load(str(model_dir / "model.onnx")).metadata_props}
    assert metadata["vocab"] == configs["vocab"]
    with open(model_dir / "lexicon.txt", encoding="utf-8") as f:
        lexicon = f.read().splitlines()
    with open(model_dir / "train.csv", encoding="utf-8") as f:
        assert lexicon == sorted({row["label"] for row in csv.DictReader(f)}) and any(" " in word for word in lexicon)

    result = run_script("inferenceModel.py", "--model", model_dir, "--lexicon", model_dir / "lexicon.txt")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3 labelled images" in result.stdout and "Average CER:" in result.stdout


@pytest.mark.slow
def test_fine_tuning_adds_units_for_new_characters(trained_model_dir, two_word_folder, tmp_path):
    """--init-from with --train-csv/--val-csv: the old vocabulary in its order, then the new
    characters; the exported ONNX model has one output per character plus the blank."""
    with open(two_word_folder / "labels.csv", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    write_labels_csv(tmp_path / "train.csv", [(two_word_folder / path, label) for path, label in rows[:24]])
    write_labels_csv(tmp_path / "val.csv", [(two_word_folder / path, label) for path, label in rows[24:]])
    model_dir = tmp_path / "model"
    result = run_script("train.py", "--init-from", trained_model_dir, "--train-csv", tmp_path / "train.csv",
                        "--val-csv", tmp_path / "val.csv", "--epochs", 1, "--batch-size", 8, "--freeze-cnn", 0.5,
                        "--model-dir", model_dir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    with open(os.path.join(trained_model_dir, "configs.yaml"), encoding="utf-8") as f:
        old = yaml.safe_load(f)
    with open(model_dir / "configs.yaml", encoding="utf-8") as f:
        new = yaml.safe_load(f)
    added = "".join(sorted(set("".join(label for _, label in rows)) - set(old["vocab"])))
    assert " " in added and "é" in added
    assert new["vocab"] == old["vocab"] + added
    assert new["init_from"] == os.path.abspath(trained_model_dir)
    assert (new["learning_rate"], new["freeze_cnn"]) == (0.003, 0.5) and "Training the CNN too" in result.stdout
    assert (new["height"], new["width"], new["architecture"]) == (old["height"], old["width"], old["architecture"])
    assert len(open(model_dir / "val.csv", encoding="utf-8").read().splitlines()) == 1 + len(rows[24:])

    exported = onnx.load(str(model_dir / "model.onnx"))
    metadata = {p.key: json.loads(p.value) for p in exported.metadata_props}
    assert metadata["vocab"] == new["vocab"]
    assert exported.graph.output[0].type.tensor_type.shape.dim[-1].dim_value == len(new["vocab"]) + 1


@pytest.mark.slow
def test_the_grown_model_reads_old_characters_as_the_starting_model(trained_model_dir, demo_dir):
    """Before any training, growing the vocabulary changes nothing the model reads: every old
    character and the blank keep their probabilities relative to each other, in the reader and in
    the CTC shortcut, and no new character wins a time step."""
    import keras

    from htr.decoding import greedy_decode
    from htr.training.finetune import finetune_configs, load_starting_weights, starting_configs
    from model import build_model

    old_configs = starting_configs(trained_model_dir)
    old_model = build_model(old_configs)
    old_model.load_weights(old_configs.init_weights)
    configs = finetune_configs(trained_model_dir)
    configs.vocab += " éZ"
    model = build_model(configs)
    load_starting_weights(model, configs)

    images = np.stack([cv2.resize(cv2.imread(path), (configs.width, configs.height))
                       for _, path, _ in parse_words_txt(demo_dir)[:32]]).astype(np.float32)
    old_outputs, new_outputs = old_model.predict(images, verbose=0), model.predict(images, verbose=0)
    n_old = len(old_configs.vocab)
    for name in ("output", "shortcut"):
        old, new = old_outputs[name], new_outputs[name]
        assert new.shape[-1] == len(configs.vocab) + 1
        new_kept = np.concatenate([new[..., :n_old], new[..., -1:]], axis=-1)
        np.testing.assert_allclose(new_kept / new_kept.sum(-1, keepdims=True), old, rtol=1e-4, atol=1e-6)
    assert greedy_decode(new_outputs["output"], configs.vocab) == greedy_decode(old_outputs["output"], old_configs.vocab)
    assert np.argmax(new_outputs["output"], -1).max() <= n_old + 3 and not np.isin(
        np.argmax(new_outputs["output"], -1), range(n_old, n_old + 3)).any()
    keras.backend.clear_session()


@pytest.mark.slow
def test_init_from_what_is_not_a_model_folder_is_one_line(tmp_path, demo_dir):
    from htr.training.finetune import StartingModelError, starting_configs

    (tmp_path / "a file").write_text("hello")
    (tmp_path / "configs only").mkdir()
    (tmp_path / "configs only" / "configs.yaml").write_text("vocab: abc\n")
    (tmp_path / "bad configs").mkdir()
    (tmp_path / "bad configs" / "model.keras").write_text("")
    (tmp_path / "bad configs" / "configs.yaml").write_text("[1, 2")
    for name, message in [("nowhere", "not a model folder written by train.py"), ("a file", "not a model folder"),
                          ("configs only", "not a model folder"), ("bad configs", "is not a configs.yaml written by train.py")]:
        with pytest.raises(StartingModelError, match=re.escape(f"--init-from {tmp_path / name}: ")) as error:
            starting_configs(str(tmp_path / name))
        assert message in str(error.value)

    result = run_script("train.py", "--init-from", tmp_path / "configs only", "--data-dir", demo_dir, "--epochs", 1,
                        "--model-dir", tmp_path / "model")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1:] == [f"error: --init-from {tmp_path / 'configs only'}: not a model folder "
                                                  "written by train.py (it needs model.keras and configs.yaml): pass "
                                                  "such a folder, or the model.keras in one"]
    assert not (tmp_path / "model").exists()


@pytest.mark.skipif(not os.path.isdir(NAMES), reason="../shared/data/names_finetune (real handwriting) is not here")
def test_the_real_names_folder_parses_whole():
    rows = parse_labels_csv(os.path.join(NAMES, "labels.csv"))
    labels = [label for _, _, label in rows]
    assert len(rows) == 500 and any(" " in label for label in labels) and any("-" in label for label in labels)


@pytest.mark.slow
def test_the_cnn_stays_frozen_for_its_share_of_training(trained_model_dir):
    """FrozenCNN: the first half of a 2-epoch schedule leaves every CNN weight (batch-norm
    statistics included) as it was, and the BiLSTM learns; the second half trains the CNN too."""
    import keras

    from htr.training.callbacks import WarmupCosineSchedule
    from htr.training.finetune import FrozenCNN, finetune_configs
    from model import compile_model

    configs = finetune_configs(trained_model_dir)
    model = compile_model(configs)
    cnn = [layer for layer in model.layers[:[layer.name for layer in model.layers].index("sequence")] if layer.weights]
    snapshots = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: snapshots.append(
        ([w.copy() for layer in cnn for w in layer.get_weights()], model.get_layer("bidirectional").get_weights()[0].copy())))
    schedule = WarmupCosineSchedule(1e-3, epochs=2)
    images = np.random.default_rng(0).integers(0, 256, (16, configs.height, configs.width, 3)).astype(np.float32)
    labels = np.zeros((16, 4), np.int64)
    before = ([w.copy() for layer in cnn for w in layer.get_weights()], model.get_layer("bidirectional").get_weights()[0].copy())
    model.fit(images, {"output": labels, "shortcut": labels}, batch_size=4, epochs=2, verbose=0,
              callbacks=[schedule, FrozenCNN(schedule, 0.5), record])
    (cnn_1, lstm_1), (cnn_2, _) = snapshots
    assert all(np.array_equal(a, b) for a, b in zip(before[0], cnn_1)) and not np.array_equal(before[1], lstm_1)
    assert not all(np.array_equal(a, b) for a, b in zip(cnn_1, cnn_2))
    keras.backend.clear_session()


@pytest.mark.slow
def test_shares_of_training_are_checked():
    result = run_script("train.py", "--freeze-cnn", "1")
    assert result.returncode == 2 and "--freeze-cnn" in result.stderr and "below 1" in result.stderr
