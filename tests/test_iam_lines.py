"""IAM's line layout (lines.txt, lines/a01/a01-000u/a01-000u-00.png): parsed with words.txt's
checks, split by the Aachen forms, and trained on by train.py. The folder is made here, from the
demo generator's line images written with cv2 under ids of forms on the Aachen lists."""
import csv
import os

import cv2
import pytest

import htr.data.iam as iam
from conftest import run_script
from htr.data.demo import generate_demo_lines
from htr.data.iam import DatasetError, parse_lines_txt, split_dataset

# Per Aachen part: how many forms, and lines per form (the demo generator's images).
FORMS = {"train": (3, 4), "validation": (2, 2), "test": (2, 2)}


def line_path(folder, line_id):
    parts = line_id.split("-")
    return os.path.join(folder, "lines", parts[0], f"{parts[0]}-{parts[1]}", f"{line_id}.png")


def write_line_image(folder, line_id, image):
    os.makedirs(os.path.dirname(line_path(folder, line_id)), exist_ok=True)
    assert cv2.imwrite(line_path(folder, line_id), image)


@pytest.fixture(scope="module")
def lines_folder(tmp_path_factory):
    """An IAM lines folder of 20 good lines on Aachen forms, then an err line, a garbage image, a
    missing image and three malformed lines. Returns (folder, {line id: label}, {line id: part})."""
    root = tmp_path_factory.mktemp("iam_lines")
    demo = generate_demo_lines(str(root / "demo"), num_lines=22, seed=4)
    with open(os.path.join(demo, "labels.csv"), encoding="utf-8", newline="") as f:
        demo_rows = list(csv.reader(f))[1:]
    folder = str(root / "IAM_Lines")
    forms = {part: iam._read_ids(os.path.join(iam.AACHEN_SPLITS_DIR, f"{part}.txt"))[:n] for part, (n, _) in FORMS.items()}
    ids = [(f"{form}-{line:02d}", {"validation": "val"}.get(part, part))
           for part, (_, per_form) in FORMS.items() for form in forms[part] for line in range(per_form)]
    labels, parts, entries = {}, {}, ["#--- lines.txt: a few lines in IAM's layout ---"]
    for (line_id, part), (image_path, label) in zip(ids, demo_rows):
        write_line_image(folder, line_id, cv2.imread(os.path.join(demo, image_path)))
        entries.append(f"{line_id} ok 154 19 408 746 1661 89 {label.replace(' ', '|')}")
        labels[line_id], parts[line_id] = label, part
    bad_form = forms["train"][0]
    write_line_image(folder, f"{bad_form}-10", cv2.imread(os.path.join(demo, demo_rows[20][0])))
    entries.append(f"{bad_form}-10 err 154 19 408 746 1661 89 {demo_rows[20][1].replace(' ', '|')}")
    os.makedirs(os.path.dirname(line_path(folder, f"{bad_form}-11")), exist_ok=True)
    with open(line_path(folder, f"{bad_form}-11"), "wb") as f:
        f.write(b"not a png at all")
    entries += [f"{bad_form}-11 ok 154 19 408 746 1661 89 garbage|image",
                f"{bad_form}-12 ok 154 19 408 746 1661 89 no|image|here",
                f"{bad_form}-13 ok 154 19 408 746",  # too few fields
                f"{bad_form}-14-00 ok 154 19 408 746 1661 89 a|word|id",  # a words.txt id
                f"{bad_form}-15 ok 154 19 408 746 1661 89 ||"]  # nothing but spaces
    with open(os.path.join(folder, "lines.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(entries) + "\n")
    return folder, labels, parts


def test_lines_txt_parses_with_spaces_and_skips_bad_lines_as_words_txt(lines_folder, capsys):
    folder, labels, _ = lines_folder
    capsys.readouterr()
    lines = parse_lines_txt(folder)
    out = capsys.readouterr().out
    assert [(line_id, label) for line_id, _, label in lines] == list(labels.items())
    assert all(" " in label and "|" not in label for _, _, label in lines)
    assert lines[0][1] == line_path(folder, lines[0][0])
    bad_form = lines[0][0][:-3]
    assert f"{os.path.join(folder, 'lines.txt')}: 26 data lines read, 20 lines kept" in out
    assert f"skipped marked err (bad segmentation box): 1 (e.g. {bad_form}-10)" in out
    assert f"skipped image unreadable: 1 (e.g. {bad_form}-11)" in out
    assert f"skipped image missing: 1 (e.g. {bad_form}-12)" in out
    assert "skipped malformed line: 3" in out
    assert "line 25: 6 fields, need at least 9" in out
    assert f"line 26: id '{bad_form}-14-00' is not like a01-000u-00" in out
    assert "line 27: empty transcription" in out

    kept = parse_lines_txt(folder, drop_er=False)
    assert len(kept) == 21 and kept[-1][0] == f"{bad_form}-10"
    assert "kept marked err (bad segmentation box): 1" in capsys.readouterr().out


def test_missing_or_empty_lines_txt_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match=r"lines.txt not found: the data folder must hold lines.txt and lines/"):
        parse_lines_txt(str(tmp_path))
    (tmp_path / "lines.txt").write_text("# nothing\na01-000u-00 ok 154 19\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="no usable lines"):
        parse_lines_txt(str(tmp_path))


def test_the_aachen_split_puts_a_forms_lines_in_the_forms_part(lines_folder, capsys):
    folder, labels, parts = lines_folder
    split = split_dataset(parse_lines_txt(folder), "aachen", folder)
    for part in ("train", "val", "test"):
        assert split[part] == [[line_path(folder, line_id), labels[line_id]]
                               for line_id in labels if parts[line_id] == part]
    assert "split aachen: 12 train, 4 val, 4 test" in capsys.readouterr().out


def test_random_and_files_splits_take_line_ids(lines_folder, tmp_path, capsys):
    folder, labels, _ = lines_folder
    lines = parse_lines_txt(folder)
    split = split_dataset(lines, "random", folder, seed=1)
    assert (len(split["train"]), len(split["val"])) == (18, 2) and split == split_dataset(lines, "random", folder, seed=1)

    ids = list(labels)
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "train.txt").write_text("\n".join(ids[:15]) + "\n", encoding="utf-8")
    (tmp_path / "splits" / "valid.txt").write_text("\n".join(ids[15:]) + "\n", encoding="utf-8")
    split = split_dataset(lines, "auto", str(tmp_path))
    assert "split auto: using files" in capsys.readouterr().out
    assert split["val"] == [[line_path(folder, line_id), labels[line_id]] for line_id in ids[15:]]
    assert len(split["train"]) == 15 and split["test"] == []


@pytest.mark.slow
def test_train_py_trains_on_an_iam_lines_folder(lines_folder, tmp_path):
    folder, _, _ = lines_folder
    model_dir = tmp_path / "model"
    result = run_script("train.py", "--preset", "line", "--data-dir", folder, "--epochs", 1, "--batch-size", 4, "--model-dir", model_dir,
                        cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "26 data lines read, 20 lines kept" in result.stdout
    assert os.path.isfile(model_dir / "model.onnx")
    with open(model_dir / "train.csv", encoding="utf-8", newline="") as f:
        assert any(" " in label for _, label in list(csv.reader(f))[1:])


@pytest.mark.slow
def test_train_py_names_lines_txt_when_a_folder_has_no_data(tmp_path):
    result = run_script("train.py", "--data-dir", tmp_path, "--epochs", 1, "--model-dir", tmp_path / "model",
                        cwd=tmp_path)
    assert result.returncode == 1
    assert (f"error: {tmp_path} holds neither labels.csv (columns image_path,label), words.txt (IAM words layout), "
            "lines.txt (IAM lines layout) nor ALTO or PAGE XML files") in result.stderr
