"""ALTO 4.4 and PAGE XML 2019-07-15 (htr.pages.xml_output): what read_page finds on a page, and readings
made by hand (polygons, baselines, Unicode, an empty line, no words), validated against the official
schemas in tests/schemas/ with lxml and read back with lxml alone; inferenceModel.py --format."""
import functools
import os

import cv2
import numpy as np
import pytest
from lxml import etree

from conftest import REPO, run_script
from htr.pages.compose import compose_page, dataset_lines
from htr.pages.xml_output import page_alto, page_pagexml
from htr.recognizer import ImageToWordModel

SCHEMAS = os.path.join(REPO, "tests", "schemas")
ALTO = {"a": "http://www.loc.gov/standards/alto/ns-v4#"}
PAGE = {"p": "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"}
FORMATS = {"alto": (page_alto, "alto-4-4.xsd"), "page": (page_pagexml, "pagecontent-2019-07-15.xsd")}


@functools.lru_cache
def schema(name):
    return etree.XMLSchema(etree.parse(os.path.join(SCHEMAS, name)))


def valid(text, schema_name):
    """The XML text parsed, after checking it against the schema (DocumentInvalid says where it is not)."""
    document = etree.fromstring(text.encode("utf-8"))
    schema(schema_name).assertValid(document)
    return document


def points(text):
    return [[int(v) for v in point.split(",")] for point in text.split()]


def alto_lines(document):
    """Each TextLine as {"box", "outline", "baseline", "text": its Strings joined by spaces, "words": [(text, WC, box)]}."""
    lines = []
    for line in document.iterfind(".//a:TextLine", ALTO):
        strings = line.findall("a:String", ALTO)
        lines.append({"box": [int(line.get(k)) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT")],
                      "outline": points(line.find("a:Shape/a:Polygon", ALTO).get("POINTS")),
                      "baseline": points(line.get("BASELINE")) if line.get("BASELINE") else None,
                      "text": " ".join(string.get("CONTENT") for string in strings),
                      "words": [(string.get("CONTENT"), float(string.get("WC")), [int(string.get(k)) for k in ("HPOS", "VPOS", "WIDTH", "HEIGHT")])
                                for string in strings if string.get("WC") is not None],
                      "spaces": len(line.findall("a:SP", ALTO))})
    return lines


def page_lines(document):
    """Each TextLine as {"outline", "baseline", "text", "confidence", "words": [(text, conf, box of its Coords)]}."""
    lines = []
    for line in document.iterfind(".//p:TextLine", PAGE):
        baseline, equiv = line.find("p:Baseline", PAGE), line.find("p:TextEquiv", PAGE)
        words = []
        for word in line.iterfind("p:Word", PAGE):
            corners = np.array(points(word.find("p:Coords", PAGE).get("points")))
            (left, top), (right, bottom) = corners.min(axis=0), corners.max(axis=0)
            words.append((word.find("p:TextEquiv/p:Unicode", PAGE).text or "", float(word.find("p:TextEquiv", PAGE).get("conf")),
                          [int(left), int(top), int(right - left), int(bottom - top)]))
        lines.append({"outline": points(line.find("p:Coords", PAGE).get("points")),
                      "baseline": points(baseline.get("points")) if baseline is not None else None,
                      "text": equiv.find("p:Unicode", PAGE).text or "",
                      "confidence": float(equiv.get("conf")) if equiv.get("conf") else None, "words": words})
    return lines


def corners(box):
    x, y, w, h = box
    return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]


def check_reading(result, name, width, height):
    """Both formats of `result` are valid and hold its lines (outline, baseline, text) and their words
    (text, confidence, box) in reading order, the image's name and size, and unique IDs."""
    for page_format, (write, schema_name) in FORMATS.items():
        document = valid(write(result, name, width, height), schema_name)
        lines = alto_lines(document) if page_format == "alto" else page_lines(document)
        assert len(lines) == len(result["lines"])
        ids = document.xpath("//@ID | //@id")
        assert len(ids) == len(set(ids))
        for number, (line, read) in enumerate(zip(result["lines"], lines)):
            assert read["text"] == line["text"]
            assert read["outline"] == line.get("polygon", corners(line["box"]))
            assert read["baseline"] == line.get("baseline")
            words = [word for word in result["words"] if word["line"] == number and word["text"]]
            assert read["words"] == [(word["text"], pytest.approx(word["confidence"], abs=1e-4), word["box"]) for word in words]
            if page_format == "alto":
                assert read["box"] == line["box"] and read["spaces"] == max(0, len(line["text"].split()) - 1)
            else:
                assert read["confidence"] == line.get("confidence")
        if page_format == "alto":
            assert document.findtext(".//a:sourceImageInformation/a:fileName", namespaces=ALTO) == name
            page = document.find(".//a:Page", ALTO)
            assert (page.get("WIDTH"), page.get("HEIGHT"), document.findtext(".//a:MeasurementUnit", namespaces=ALTO)) == \
                (str(width), str(height), "pixel")
        else:
            page = document.find("p:Page", PAGE)
            assert (page.get("imageFilename"), page.get("imageWidth"), page.get("imageHeight")) == (name, str(width), str(height))


def test_a_page_read_by_a_real_model(random_model_dir, demo_dir):
    """read_page's result for a composed page of demo words, read by a real (random) model: texts,
    boxes and confidences as read_page gives them, some words read as nothing (left out, as from the line's text)."""
    lines = [[(cv2.imread(path), text) for path, text in line[:6]] for line in dataset_lines(demo_dir)[0][:3]]
    page, _ = compose_page(lines, np.random.default_rng(0), angle=1.0, line_pitch=1.3, gaps=(0.6, 0.9))
    result = ImageToWordModel(random_model_dir).read_page(page)
    assert len(result["lines"]) == 3 and sum(bool(word["text"]) for word in result["words"]) >= 6
    check_reading(result, "letter.png", page.shape[1], page.shape[0])


HAND_MADE = {
    "words": [{"box": [40, 30, 120, 50], "text": "ﬁne", "confidence": 0.93, "line": 0},
              {"box": [180, 34, 90, 44], "text": "<&>", "confidence": 0.4071, "line": 0},
              {"box": [290, 28, 150, 56], "text": "Straße", "confidence": 1.0, "line": 0},
              {"box": [60, 200, 80, 40], "text": "", "confidence": 0.05, "line": 1},
              {"box": [40, 300, 100, 40], "text": "café", "confidence": 0.6, "line": 2}],
    "lines": [{"box": [40, 28, 400, 56], "text": "ﬁne <&> Straße", "confidence": 0.5,
               "polygon": [[38, 30], [200, 24], [442, 26], [442, 86], [200, 88], [38, 82]], "baseline": [[40, 74], [440, 70]]},
              {"box": [60, 200, 80, 40], "text": ""},  # ink read as nothing
              {"box": [40, 300, 100, 40], "text": "café", "baseline": [[40, 332], [140, 333]]}],
    "text": "ﬁne <&> Straße\n\ncafé"}


def test_a_reading_by_hand_with_polygons_baselines_unicode_and_an_empty_line():
    check_reading(HAND_MADE, "scan <1> & é.jpg", 600, 400)


def test_unicode_is_nfc_and_what_xml_cannot_hold_is_replaced():
    decomposed = {"words": [{"box": [0, 0, 50, 20], "text": "cafe\u0301\x07", "confidence": 0.5, "line": 0}],
                  "lines": [{"box": [0, 0, 50, 20], "text": "cafe\u0301\x07"}], "text": "cafe\u0301\x07"}
    for page_format, (write, schema_name) in FORMATS.items():
        text = write(decomposed, "x.png", 100, 40)
        lines = (alto_lines if page_format == "alto" else page_lines)(valid(text, schema_name))
        assert lines[0]["text"] == "caf\u00e9\ufffd" and lines[0]["words"][0][0] == "caf\u00e9\ufffd"
        assert "ﬁ" in page_alto(HAND_MADE, "x", 600, 400)  # NFC keeps the ligature (NFKC would not)


def test_a_page_without_writing_and_boxes_outside_the_image():
    empty = {"words": [], "lines": [], "text": ""}
    assert alto_lines(valid(page_alto(empty, "blank.png", 300, 200), "alto-4-4.xsd")) == []
    assert page_lines(valid(page_pagexml(empty, "blank.png", 300, 200), "pagecontent-2019-07-15.xsd")) == []
    past_the_edge = {"words": [], "lines": [{"box": [-5, 190, 320, 20], "text": "", "polygon": [[-3, 188.6], [305.2, 190], [300, 215]]},
                                            {"box": [250, -4, 80, 30], "text": ""}], "text": "\n"}
    for page_format, (write, schema_name) in FORMATS.items():  # PAGE wants whole, non-negative pixels
        lines = (alto_lines if page_format == "alto" else page_lines)(valid(write(past_the_edge, "x", 300, 200), schema_name))
        assert [line["outline"] for line in lines] == [[[0, 189], [300, 190], [300, 200]], corners([250, 0, 50, 26])]


@pytest.mark.parametrize("page_format", ["alto", "page"])
def test_the_page_command_writes_xml(random_model_dir, demo_dir, tmp_path, page_format):
    lines = [[(cv2.imread(path), text) for path, text in line[:5]] for line in dataset_lines(demo_dir)[0][:2]]
    page, _ = compose_page(lines, np.random.default_rng(1), line_pitch=1.3, gaps=(0.6, 0.9))
    (tmp_path / "scans").mkdir()
    cv2.imwrite(str(tmp_path / "scans" / "letter.png"), page)
    out = tmp_path / "out"
    result = run_script("inferenceModel.py", "--model", random_model_dir, "--page", tmp_path / "scans" / "letter.png",
                        "--output-dir", out, "--format", page_format)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(out)) == ["letter.xml"] and f"-> {out / 'letter.xml'}" in result.stdout
    text = (out / "letter.xml").read_text(encoding="utf-8")
    document = valid(text, FORMATS[page_format][1])
    lines = alto_lines(document) if page_format == "alto" else page_lines(document)
    printed = result.stdout.split("letter.xml\n", 1)[1].rstrip("\n")
    assert len(lines) == 2 and "\n".join(line["text"] for line in lines) == printed
    name = document.findtext(".//a:fileName", namespaces=ALTO) if page_format == "alto" else document.find("p:Page", PAGE).get("imageFilename")
    assert name == os.path.join("..", "scans", "letter.png") and cv2.imread(str(out / name)).shape == page.shape  # from the XML's folder


def test_a_bad_format_is_refused():
    result = run_script("inferenceModel.py", "--page", "a.png", "--output-dir", "out", "--format", "pdf")
    assert result.returncode == 2
    assert "error: argument --format: invalid choice: 'pdf' (choose from 'json', 'alto', 'page')" in result.stderr
    result = run_script("inferenceModel.py", "--format", "alto", "a.png")
    assert result.returncode == 2 and "error: --format alto is for --page" in result.stderr
