"""Training from an eScriptorium or Transkribus export (htr/data/xml_pages.py): ALTO v4 and PAGE XML
files beside their page images, each text line cut out by its polygon into a cached labels.csv."""
import csv
import glob
import json
import os
import shutil

import cv2
import numpy as np
import onnx
import pytest
from PIL import Image

from conftest import REPO, run_script
from htr.data.labels_csv import parse_labels_csv, split_labels_csv
from htr.data.xml_pages import (XmlError, cut_line, document_of, export_labels_csv, is_xml_export, page_image,
                                read_xml_lines, read_xml_page, split_by_document, split_xml_export)

ALTO = "http://www.loc.gov/standards/alto/ns-v4#"
PAGE_2019 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGE_2013 = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15"
POILUS = os.path.join(REPO, "..", "shared", "data", "poilus_alto")
ACUTE = "e\u0301"  # e + combining acute accent: NFC makes it the one character é


def write_page_image(path, size, boxes):
    """A page of tinted paper with a dark scribble in each (x, y, w, h) box."""
    page = np.full((size[1], size[0], 3), (225, 235, 240), np.uint8)
    for x, y, w, h in boxes:
        for i in range(x + 4, x + w - 8, 12):
            cv2.line(page, (i, y + h - 6), (i + 6, y + 6), (40, 30, 30), 2)
    cv2.imwrite(str(path), page)


def polygon(x, y, w, h):
    """A line's polygon: its box with the top edge bent, as segmenters draw them."""
    return [(x, y + 4), (x + w // 2, y), (x + w, y + 4), (x + w, y + h), (x, y + h)]


def write_alto(path, image_name, size, lines):
    """lines: (id, polygon, baseline as written, [words])."""
    text_lines = "".join(
        f'<TextLine ID="{line_id}" BASELINE="{baseline}" HPOS="{min(x for x, _ in points)}" '
        f'VPOS="{min(y for _, y in points)}" WIDTH="{max(x for x, _ in points) - min(x for x, _ in points)}" '
        f'HEIGHT="{max(y for _, y in points) - min(y for _, y in points)}"><Shape><Polygon POINTS="'
        + " ".join(f"{x} {y}" for x, y in points) + '"/></Shape>'
        + '<SP/>'.join(f'<String CONTENT="{word}"/>' for word in words) + "</TextLine>"
        for line_id, points, baseline, words in lines)
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<alto xmlns="{ALTO}"><Description>'
                    f"<MeasurementUnit>pixel</MeasurementUnit><sourceImageInformation><fileName>{image_name}"
                    f'</fileName></sourceImageInformation></Description><Layout><Page WIDTH="{size[0]}" '
                    f'HEIGHT="{size[1]}" ID="p1"><PrintSpace><TextBlock ID="b1">{text_lines}</TextBlock>'
                    "</PrintSpace></Page></Layout></alto>", encoding="utf-8")


def write_page_xml(path, image_name, size, lines, namespace=PAGE_2019):
    """lines: (id, polygon, line text or None, [word texts])."""
    def equiv(text):
        return f"<TextEquiv><Unicode>{text}</Unicode></TextEquiv>"
    text_lines = "".join(
        f'<TextLine id="{line_id}"><Coords points="' + " ".join(f"{x},{y}" for x, y in points) + '"/>'
        f'<Baseline points="{points[-1][0]},{points[-1][1] - 3} {points[-2][0]},{points[-2][1] - 3}"/>'
        + "".join(f'<Word id="{line_id}w{i}"><Coords points="0,0 1,1"/>{equiv(word)}</Word>' for i, word in enumerate(words))
        + (equiv(text) if text is not None else "") + "</TextLine>"
        for line_id, points, text, words in lines)
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<PcGts xmlns="{namespace}"><Metadata/>'
                    f'<Page imageFilename="{image_name}" imageWidth="{size[0]}" imageHeight="{size[1]}">'
                    f'<TextRegion id="r1"><Coords points="0,0 1,1"/>{text_lines}</TextRegion></Page></PcGts>',
                    encoding="utf-8")


BOXES = [(20, 20, 300, 40), (20, 80, 260, 40), (20, 140, 280, 40), (20, 200, 240, 40)]
SIZE = (400, 260)


@pytest.fixture
def export_dir(tmp_path):
    """Four good pages of three documents (ALTO, PAGE 2019, PAGE 2013), a broken XML file, a page whose
    image is missing and a METS file; among the lines an empty one and one outside its page."""
    folder = tmp_path / "export"
    folder.mkdir()
    for name in ("doc_a-1", "doc_a-2", "doc_b-1", "doc_c-1"):
        write_page_image(folder / f"{name}.png", SIZE, BOXES)
    write_alto(folder / "doc_a-1.xml", "doc_a-1.png", SIZE, [
        ("a1", polygon(*BOXES[0]), "20 60 320 60", ["Dear", "Mother,"]),
        ("a2", polygon(*BOXES[1]), "20,120 280,120", ["I  am", "well"]),
        ("a3", polygon(*BOXES[2]), "20 180 300 180", [""]),  # no text: skipped and counted
        ("a4", polygon(*BOXES[3]), "20 240 260 240", [f"caf{ACUTE}"])])
    write_alto(folder / "doc_a-2.xml", "doc_a-2.png", SIZE, [
        ("b1", polygon(*BOXES[0]), "", ["the rain"]), ("b2", polygon(*BOXES[1]), "", ["has stopped"]),
        ("b3", polygon(*BOXES[2]), "", ["at last"]),
        ("b4", polygon(380, 200, 100, 40), "", ["off the page"])])  # 480 > 400: outside
    write_page_xml(folder / "doc_b-1.xml", "doc_b-1.png", SIZE, [
        ("c1", polygon(*BOXES[0]), "we march", ["ignored"]), ("c2", polygon(*BOXES[1]), None, ["at", "dawn"]),
        ("c3", polygon(*BOXES[2]), f"d{ACUTE}j\u00e0 tard", []), ("c4", polygon(*BOXES[3]), "Yours", [])])
    write_page_xml(folder / "doc_c-1.xml", "C:\\scans\\doc_c-1.png", SIZE, [  # the image by its base name
        ("d1", polygon(*BOXES[0]), "one", []), ("d2", polygon(*BOXES[1]), "two", []),
        ("d3", polygon(*BOXES[2]), "three", [])], namespace=PAGE_2013)
    (folder / "broken.xml").write_text(f'<alto xmlns="{ALTO}"><Layout><Page></Layout></alto>', encoding="utf-8")
    write_alto(folder / "doc_d-1.xml", "doc_d-1.jpg", SIZE, [("e1", polygon(*BOXES[0]), "", ["lost"])])
    (folder / "METS.xml").write_text('<mets xmlns="http://www.loc.gov/METS/"/>', encoding="utf-8")
    return folder


GOOD_LABELS = {"doc_a-1": ["Dear Mother,", "I am well", "caf\u00e9"], "doc_a-2": ["the rain", "has stopped", "at last"],
               "doc_b-1": ["we march", "at dawn", "d\u00e9j\u00e0 tard", "Yours"], "doc_c-1": ["one", "two", "three"]}


def test_an_alto_file_gives_its_lines_with_polygon_baseline_box_and_text(export_dir):
    page = read_xml_page(str(export_dir / "doc_a-1.xml"))
    assert page["format"] == "alto" and page["image_name"] == "doc_a-1.png" and page["size"] == list(SIZE)
    first, second = page["lines"][:2]
    assert first["id"] == "a1" and first["polygon"] == [list(p) for p in polygon(*BOXES[0])]
    assert first["baseline"] == [[20, 60], [320, 60]] and second["baseline"] == [[20, 120], [280, 120]]  # both forms
    assert first["box"] == [20, 20, 300, 40]
    assert [line["text"] for line in page["lines"]] == ["Dear Mother,", "I am well", "", "caf\u00e9"]
    assert read_xml_lines(str(export_dir / "doc_a-1.xml")) == page["lines"]


def test_a_page_xml_file_takes_the_lines_own_text_else_its_words(export_dir):
    page = read_xml_page(str(export_dir / "doc_b-1.xml"))
    assert page["format"] == "page" and page["size"] == list(SIZE)
    assert [line["text"] for line in page["lines"]] == ["we march", "at dawn", "d\u00e9j\u00e0 tard", "Yours"]
    line = page["lines"][0]
    assert line["id"] == "c1" and line["box"] == [20, 20, 300, 40] and line["baseline"] == [[20, 57], [320, 57]]
    assert read_xml_page(str(export_dir / "doc_c-1.xml"))["format"] == "page"  # the 2013 schema


def test_an_export_is_cut_into_line_images_and_every_bad_file_and_line_is_reported(export_dir, tmp_path, capsys):
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "METS.xml").write_text('<mets xmlns="http://www.loc.gov/METS/"/>', encoding="utf-8")
    assert is_xml_export(str(export_dir)) and not is_xml_export(str(tmp_path / "other"))
    labels_csv = export_labels_csv(str(export_dir), str(tmp_path / "cache"))
    out = capsys.readouterr().out
    assert "skipped broken.xml: not valid XML (" in out
    assert "skipped doc_d-1.xml: its image doc_d-1.jpg is not beside it" in out
    assert "skipped doc_a-2.xml line b4: coordinates outside the 400x260 image (x 380 to 480" in out
    assert "5 pages, 15 text lines read, 13 line images kept" in out
    assert "skipped lines: without text: 1 (doc_a-1.xml line a3)" in out
    assert "files that are not ALTO or PAGE XML (METS and the like): 1 (METS.xml)" in out
    with open(labels_csv, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = {}
    for row in rows:
        labels.setdefault(row["image_path"].split(os.sep)[1], []).append(row["label"])
    assert labels == GOOD_LABELS
    assert {row["document"] for row in rows} == {"doc_a", "doc_b", "doc_c"}

    crop = cv2.imread(os.path.join(os.path.dirname(labels_csv), rows[0]["image_path"]))
    assert crop.shape == (40, 300, 3)  # the polygon's bounding rectangle
    assert (crop[:, :, 0] < 100).any()  # the scribble
    assert abs(int(crop[0, 2, 0]) - 225) <= 3 and abs(int(crop[0, 2, 2]) - 240) <= 3  # outside the polygon: paper

    assert export_labels_csv(str(export_dir), str(tmp_path / "cache")) == labels_csv  # reused
    assert "Reusing the line images cut from" in capsys.readouterr().out
    os.utime(export_dir / "doc_c-1.xml", ns=(1, 1))  # a changed file: cut anew, elsewhere
    assert export_labels_csv(str(export_dir), str(tmp_path / "cache")) != labels_csv
    assert not glob.glob(str(tmp_path / "cache" / "*.tmp-*"))


def test_nfc_labels_from_xml_and_from_labels_csv_agree(export_dir, tmp_path):
    texts = [line["text"] for line in read_xml_lines(str(export_dir / "doc_a-1.xml"))]
    assert "caf\u00e9" in texts and not any(ACUTE in text for text in texts)
    folder = tmp_path / "csv"
    folder.mkdir()
    write_page_image(folder / "w.png", (60, 30), [])
    (folder / "labels.csv").write_text(f"image_path,label\nw.png,caf{ACUTE}\n", encoding="utf-8")
    assert [label for _, _, label in parse_labels_csv(str(folder / "labels.csv"), min_rows=1)] == ["caf\u00e9"]


def test_an_export_trains_exactly_like_a_labels_csv_of_the_same_line_images(export_dir, tmp_path):
    export_csv = export_labels_csv(str(export_dir), str(tmp_path / "cache"))
    copy = tmp_path / "copy"
    shutil.copytree(os.path.dirname(export_csv), copy)
    with open(export_csv, encoding="utf-8", newline="") as f:
        rows = [(row["image_path"], row["label"]) for row in csv.DictReader(f)]
    (copy / "labels.csv").write_text("image_path,label\n" + "".join(f'{p},"{label}"\n' for p, label in rows), encoding="utf-8")
    val_csv = copy / "val.csv"
    val_csv.write_text("image_path,label\n" + "".join(f'{os.path.join(copy, p)},"{label}"\n' for p, label in rows[:2]),
                       encoding="utf-8")
    from_export = split_xml_export(str(export_dir), val_csv=str(val_csv), cache_dir=str(tmp_path / "cache"))
    from_csv = split_labels_csv([str(copy / "labels.csv")], str(val_csv))
    for part in ("train", "val"):
        assert [label for _, label in from_export[part]] == [label for _, label in from_csv[part]]
        assert len(from_export[part]) == len(from_csv[part])
        for (export_path, _), (csv_path, _) in zip(from_export[part], from_csv[part]):
            assert np.array_equal(cv2.imread(export_path), cv2.imread(csv_path))


def test_the_split_keeps_each_documents_pages_together(export_dir, tmp_path):
    splits = split_xml_export(str(export_dir), cache_dir=str(tmp_path / "cache"), seed=3)
    folder_of = {line: page for page, lines in GOOD_LABELS.items() for line in lines}
    documents = {part: {folder_of[label].split("-")[0] for _, label in splits[part]} for part in ("train", "val")}
    assert documents["train"] and documents["val"] and not documents["train"] & documents["val"]
    assert splits == split_xml_export(str(export_dir), cache_dir=str(tmp_path / "cache"), seed=3)  # deterministic
    rows = [(f"{i}.png", "x", f"doc{i % 20}") for i in range(200)]
    split = split_by_document(rows, seed=1)
    val_documents = {f"doc{int(p[:-4]) % 20}" for p, _ in split["val"]}
    assert len(split["val"]) == 20 and len(val_documents) == 2  # whole documents, 10% of the lines
    one_writer = split_by_document([(f"{i}.png", "x", "diary") for i in range(20)], seed=1)
    assert len(one_writer["val"]) == 2 and len(one_writer["train"]) == 18  # by line, with a note
    assert document_of("TestamentsDePoilus_will_AD78_0002-0.xml") == "TestamentsDePoilus_will_AD78_0002"
    assert document_of(os.path.join("letters", "page", "0001.xml")) == "letters"  # Transkribus: the folder


def test_coordinates_of_the_stored_frame_or_a_halved_image_are_matched_and_others_refused(tmp_path):
    stored = np.full((100, 300, 3), 230, np.uint8)
    stored[40:60, 20:120] = 20  # a stroke at the left of the stored (landscape) frame
    exif = Image.Exif()
    exif[0x0112] = 6  # show it turned 90 degrees: upright it is 100 wide, 300 high
    Image.fromarray(stored).save(tmp_path / "p.jpg", "JPEG", exif=exif, quality=95)
    image, x_scale, y_scale, matched = page_image(str(tmp_path / "p.jpg"), [300, 100])
    assert image.shape[:2] == (100, 300) and "stored frame" in matched and (x_scale, y_scale) == (1, 1)
    crop = cut_line(image, {"polygon": [[20, 40], [120, 40], [120, 60], [20, 60]], "box": None})
    assert crop.mean() < 60  # the stroke, not paper
    image, x_scale, y_scale, matched = page_image(str(tmp_path / "p.jpg"), [600, 200])
    assert (x_scale, y_scale) == (0.5, 0.5) and matched.startswith("scaled")
    with pytest.raises(XmlError, match="declares a 500x100 page but p.jpg is 100x300 or 300x100"):
        page_image(str(tmp_path / "p.jpg"), [500, 100])


@pytest.mark.slow
def test_train_py_trains_a_line_model_on_an_export_and_exports_it(export_dir, tmp_path):
    model_dir = tmp_path / "model"
    result = run_script("train.py", "--data-dir", export_dir, "--preset", "line", "--epochs", 2, "--batch-size", 4,
                        "--model-dir", model_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "split by document:" in result.stdout and "13 line images kept" in result.stdout
    assert glob.glob(str(tmp_path / "Datasets" / "XML_Lines" / "export-*" / "labels.csv"))
    metadata = {p.key: json.loads(p.value) for p in onnx.load(str(model_dir / "model.onnx")).metadata_props}
    assert metadata["height"] == 48 and "\u00e9" in metadata["vocab"]
    wrong = run_script("train.py", "--data-dir", model_dir, "--val-dir", export_dir, cwd=tmp_path)
    assert wrong.returncode != 0 and "error: --val-dir goes with a --data-dir of ALTO or PAGE XML" in wrong.stderr


@pytest.mark.skipif(not os.path.isdir(POILUS), reason="../shared/data/poilus_alto is absent")
def test_the_poilus_export_parses_whole_inside_its_images_and_splits_by_will():
    pages = sorted(glob.glob(os.path.join(POILUS, "*.xml")))
    rows = []
    for path in pages:
        page = read_xml_page(path)
        image = cv2.imread(os.path.join(POILUS, page["image_name"]), cv2.IMREAD_REDUCED_GRAYSCALE_8)
        assert abs(image.shape[1] * 8 - page["size"][0]) < 8 and abs(image.shape[0] * 8 - page["size"][1]) < 8
        for line in page["lines"]:
            points = np.array(line["polygon"])
            assert line["text"] and (points >= 0).all() and (points <= page["size"]).all(), (path, line["id"])
        rows += [(f"{path}:{line['id']}", line["text"], document_of(os.path.basename(path))) for line in page["lines"]]
    assert (len(pages), len(rows)) == (176, 2529)
    split = split_by_document(rows, seed=42)
    document = {path: doc for path, _, doc in rows}
    assert not {document[p] for p, _ in split["train"]} & {document[p] for p, _ in split["val"]}
