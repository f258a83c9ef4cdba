"""The round trip between the two XML sides: a page's reading written as ALTO and as PAGE XML
(htr.pages.xml_output) and read back by the training reader (htr.data.xml_pages) gives the same lines,
outlines, baselines and texts, and cuts into a labels.csv with one row per line that has text."""
import csv
import os

import cv2
import numpy as np
import pytest

from htr.data.xml_pages import export_labels_csv, read_xml_lines
from htr.pages.xml_output import page_alto, page_pagexml

READING = {
    "words": [{"box": [40, 30, 120, 50], "text": "ﬁne", "confidence": 0.93, "line": 0},
              {"box": [180, 34, 90, 44], "text": "<&>", "confidence": 0.41, "line": 0},
              {"box": [290, 28, 150, 56], "text": "Straße", "confidence": 1.0, "line": 0},
              {"box": [40, 300, 100, 40], "text": "cafe\u0301", "confidence": 0.6, "line": 2}],
    "lines": [{"box": [38, 24, 404, 64], "text": "ﬁne <&> Straße", "confidence": 0.5,
               "polygon": [[38, 30], [200, 24], [442, 26], [442, 86], [200, 88], [38, 82]], "baseline": [[40, 74], [440, 70]]},
              {"box": [60, 200, 80, 40], "text": ""},  # ink read as nothing: written, but no training line
              {"box": [40, 300, 100, 40], "text": "cafe\u0301", "baseline": [[40, 332], [140, 333]]}],
    "text": "ﬁne <&> Straße\n\ncafé"}


def corners(box):
    x, y, w, h = box
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


@pytest.mark.parametrize("write", [page_alto, page_pagexml], ids=["alto", "page"])
def test_a_reading_written_as_xml_reads_back_as_the_same_lines(write, tmp_path):
    page = np.full((400, 600, 3), 235, np.uint8)
    for word in READING["words"]:
        x, y, w, h = word["box"]
        cv2.line(page, (x + 4, y + h // 2), (x + w - 4, y + h // 2), (30, 30, 30), 5)  # ink where the words are
    cv2.imwrite(str(tmp_path / "page-1.png"), page)
    (tmp_path / "page-1.xml").write_text(write(READING, "page-1.png", 600, 400), encoding="utf-8")

    lines = read_xml_lines(str(tmp_path / "page-1.xml"))
    assert [line["text"] for line in lines] == ["ﬁne <&> Straße", "", "café"]  # NFC: é is one character
    for line, written in zip(lines, READING["lines"]):
        assert line["polygon"] == written.get("polygon", corners(written["box"]))
        assert line["baseline"] == written.get("baseline")
        assert line["box"] == written["box"]

    labels_csv = export_labels_csv(str(tmp_path), str(tmp_path / "cache"))
    with open(labels_csv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [row["label"] for row in rows] == ["ﬁne <&> Straße", "café"]
    for row in rows:
        assert cv2.imread(os.path.join(os.path.dirname(labels_csv), row["image_path"])).shape[:2] > (30, 90)
