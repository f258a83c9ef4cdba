"""Transcriptions exported from eScriptorium or Transkribus: a folder of ALTO v4 or PAGE XML
(2019-07-15 or 2013-07-15) files beside their page images.

    export/page-1.xml   <alto> or <PcGts>: the page's text lines, each with its polygon,
    export/page-1.jpg   baseline, box and transcription; the image it names (else one named as the XML)
    export/page/p1.xml  Transkribus: the XML in a page/ folder, its image one folder up

read_xml_page parses one file (read_xml_lines: just its lines); export_labels_csv cuts every text
line out of every page into a labels.csv of line images, kept in Datasets/XML_Lines/ so a second
run reuses it, and train.py trains on that exactly as on any labels.csv; split_xml_export splits
it by document, so one writer's pages are never in training and validation both.

Each line is cut out by its polygon, as kraken and eScriptorium extract lines: the polygon's
bounding rectangle, the pixels outside the polygon painted with the paper's brightness
(htr.preprocess.paper_brightness), so the neighbouring lines' ascenders and descenders are gone.
A file that is not valid XML, a missing image, or a line outside its image is reported in one
line naming it and skipped; the other files go on, and a summary counts what was skipped.
"""
import csv
import math
import os
import random
import re
import shutil
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from hashlib import sha256

import cv2
import numpy as np

from htr.data.iam import DatasetError, split_dataset
from htr.data.labels_csv import SHOWN, parse_labels_csv, split_labels_csv
from htr.files import write_csv, write_file
from htr.images import IMAGE_EXTENSIONS, UnreadableImage, read_image
from htr.preprocess import paper_brightness

ALTO_NAMESPACES = ("http://www.loc.gov/standards/alto/ns-v4#",)
PAGE_NAMESPACES = ("http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15",
                   "http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15")
CACHE_DIR = os.path.join("Datasets", "XML_Lines")
CUT_VERSION = 1  # part of the cache's name: a change to how lines are cut makes new line images
EDGE = 2  # pixels a point may lie past the image's edge (rounding in the export) and be moved onto it
VAL_FRACTION = 0.1  # as a labels.csv folder's random split (htr.data.iam.split_dataset)


class XmlError(Exception):
    """A page file, or one of its lines, that cannot be used; str(e) says why, e.reason in a few
    words for the summary."""

    def __init__(self, message, reason=None):
        super().__init__(message)
        self.reason = reason or message


def xml_format(path: str) -> str | None:
    """"alto" or "page" for an ALTO v4 or PAGE XML file, judged by its root element alone; None for
    any other file, broken XML included."""
    try:
        for _, root in ET.iterparse(path, events=("start",)):
            return _format_of(root.tag)
    except (ET.ParseError, OSError):
        return None


def _format_of(tag: str) -> str | None:
    namespace, _, name = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    if name == "alto" and namespace in ALTO_NAMESPACES:
        return "alto"
    if name == "PcGts" and namespace in PAGE_NAMESPACES:
        return "page"
    return None


def xml_files(folder: str) -> list[str]:
    """Every .xml file under folder, in name order (METS and other XML among them: read_xml_page tells)."""
    return [os.path.join(root, name) for root, dirs, names in sorted(os.walk(folder)) if not dirs.sort()
            for name in sorted(names) if name.lower().endswith(".xml")]


def is_xml_export(folder: str) -> bool:
    """Whether folder holds ALTO v4 or PAGE XML files, so train.py --data-dir reads it as an export."""
    return any(xml_format(path) for path in xml_files(folder))


def read_xml_lines(path: str) -> list[dict]:
    """The text lines of one ALTO v4 or PAGE XML file, in document order, each
    {"id", "polygon", "baseline", "box", "text"} as read_xml_page gives them."""
    return read_xml_page(path)["lines"]


def read_xml_page(path: str) -> dict:
    """One ALTO v4 or PAGE XML file -> {"format": "alto" or "page", "image_name": the image it names
    (or None), "size": [width, height] it declares (or None), "lines": [...]}. A line is {"id",
    "polygon": [[x, y], ...] or None, "baseline": [[x, y], ...] or None, "box": [x, y, width, height]
    or None (from the polygon where the file has none), "text": NFC, whitespace runs made one space}.
    Numbers as written: int when whole. XmlError for a file that cannot be read as either."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise XmlError(f"cannot be read ({e.strerror or e})", "unreadable") from None
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise XmlError("declares a DOCTYPE or entities, which ALTO and PAGE exports never do: not read", "DOCTYPE")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise XmlError(f"not valid XML ({e})", "not valid XML") from None
    kind = _format_of(root.tag)
    if kind is None:
        raise XmlError(f"not ALTO v4 or PAGE XML (its root is {root.tag})", "not ALTO or PAGE XML")
    namespace = {"x": root.tag[1:].partition("}")[0]}
    page = _alto_page(root, namespace) if kind == "alto" else _page_page(root, namespace)
    return {"format": kind, **page}


def _alto_page(root, ns) -> dict:
    unit = (root.findtext("x:Description/x:MeasurementUnit", namespaces=ns) or "pixel").strip()
    if unit != "pixel":
        raise XmlError(f"measures in {unit}, not pixels: export it with pixel coordinates")
    page = root.find("x:Layout/x:Page", ns)
    if page is None:
        raise XmlError("has no Layout/Page")
    lines = []
    for line in page.iter(f"{{{ns['x']}}}TextLine"):
        shape = line.find("x:Shape/x:Polygon", ns)
        words = []
        for child in line:
            if child.tag.endswith("}String"):
                words.append(child.get("CONTENT", ""))
            elif child.tag.endswith("}HYP") and words:
                words[-1] += child.get("CONTENT", "")
        box = [_number(line.get(name), line) for name in ("HPOS", "VPOS", "WIDTH", "HEIGHT")]
        lines.append(_line(line, None if shape is None else shape.get("POINTS"), line.get("BASELINE"),
                           None if None in box else box, " ".join(words)))
    return {"image_name": root.findtext("x:Description/x:sourceImageInformation/x:fileName", namespaces=ns),
            "size": _size(page.get("WIDTH"), page.get("HEIGHT"), page), "lines": lines}


def _page_page(root, ns) -> dict:
    page = root.find("x:Page", ns)
    if page is None:
        raise XmlError("has no Page")
    lines = []
    for line in page.iter(f"{{{ns['x']}}}TextLine"):
        coords, baseline = line.find("x:Coords", ns), line.find("x:Baseline", ns)
        text = _text_equiv(line, ns)
        if text is None:
            text = " ".join(_text_equiv(word, ns) or "" for word in line.findall("x:Word", ns))
        lines.append(_line(line, None if coords is None else coords.get("points"),
                           None if baseline is None else baseline.get("points"), None, text))
    return {"image_name": page.get("imageFilename"),
            "size": _size(page.get("imageWidth"), page.get("imageHeight"), page), "lines": lines}


def _text_equiv(element, ns) -> str | None:
    """The Unicode of an element's own TextEquiv, the one with the lowest index where it has several."""
    equivs = element.findall("x:TextEquiv", ns)
    if not equivs:
        return None
    first = min(equivs, key=lambda equiv: int(equiv.get("index", "0")) if equiv.get("index", "").isdigit() else 0)
    return first.findtext("x:Unicode", default="", namespaces=ns)


def _line(element, points, baseline, box, text) -> dict:
    polygon = _points(points, element)
    if box is None and polygon:
        xs, ys = [x for x, _ in polygon], [y for _, y in polygon]
        box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    return {"id": element.get("ID") or element.get("id"), "polygon": polygon,
            "baseline": _points(baseline, element), "box": box, "text": clean_text(text)}


def clean_text(text: str) -> str:
    """A transcription as a label: NFC (an "é" typed as e + accent is the one character é), each run
    of whitespace one space, none at either end."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _points(text, element):
    """"x1,y1 x2,y2 ..." or "x1 y1 x2 y2 ..." -> [[x1, y1], [x2, y2], ...]; None for none."""
    if text is None or not text.strip():
        return None
    numbers = [_number(value, element) for value in re.split(r"[\s,]+", text.strip())]
    if len(numbers) % 2:
        raise XmlError(f"line {element.get('ID') or element.get('id')}: {text[:40]!r} is not x,y pairs",
                       "bad coordinates")
    return [numbers[i:i + 2] for i in range(0, len(numbers), 2)]


def _number(value, element):
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise XmlError(f"{element.get('ID') or element.get('id') or element.tag}: {value!r} is not a number",
                       "bad coordinates")
    return int(number) if number.is_integer() else number


def _size(width, height, element):
    width, height = _number(width, element), _number(height, element)
    return [width, height] if width and height else None


# -----------------------------------------------------------------------------
# the page image and its lines


def find_page_image(xml_path: str, image_name: str | None) -> str:
    """The image an XML file describes: the one it names, beside it (Transkribus: one folder up from
    its page/ folder), else an image named as the XML. XmlError when there is none."""
    folder = os.path.dirname(xml_path)
    folders = [folder, os.path.dirname(folder)] if os.path.basename(folder) == "page" else [folder]
    names = [image_name, os.path.basename(image_name.replace("\\", "/"))] if image_name else []
    for name in names:
        for where in folders:
            if os.path.isfile(os.path.join(where, name)):
                return os.path.join(where, name)
    stem = os.path.splitext(os.path.basename(xml_path))[0]
    for where in folders:
        for name in sorted(os.listdir(where or ".")):
            if os.path.splitext(name)[0] == stem and name.lower().endswith(IMAGE_EXTENSIONS):
                return os.path.join(where, name)
    raise XmlError(f"its image {image_name or ''} is not beside it, nor an image named {stem}.*", "image missing")


def page_image(image_path: str, size: list | None) -> tuple[np.ndarray, float, float, str | None]:
    """(the page image as the XML's coordinates see it, x scale, y scale, how it was matched or None).

    The image is read upright (its JPEG EXIF orientation applied, as everywhere in the project); an
    export made on the stored frame declares that frame's size, so it is read that way instead. An
    image of another size with the declared aspect ratio (a page halved after export) gets the
    coordinates scaled to it. Any other size is not the image the XML was made on: XmlError."""
    try:
        upright = read_image(image_path)
    except UnreadableImage as e:
        raise XmlError(f"its image {os.path.basename(image_path)}: {e}", "image unreadable") from None
    frames = {"upright": upright}
    if size and _size_of(upright) != size:
        with open(image_path, "rb") as f:
            stored = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if stored is not None and stored.shape[:2] != upright.shape[:2]:
            frames["stored"] = stored
    for name, image in frames.items():
        if size is None or _size_of(image) == size:
            return image, 1.0, 1.0, None if name == "upright" else "read in the stored frame (EXIF orientation ignored)"
    for name, image in frames.items():
        width, height = _size_of(image)
        if abs(width / size[0] - height / size[1]) <= 0.01 * width / size[0]:
            return image, width / size[0], height / size[1], f"scaled to the image ({size[0]}x{size[1]} declared)"
    sizes = " or ".join(f"{w}x{h}" for w, h in map(_size_of, frames.values()))
    raise XmlError(f"declares a {size[0]}x{size[1]} page but {os.path.basename(image_path)} is {sizes}: "
                   "not the image it was made on", "image of another size")


def _size_of(image) -> list[int]:
    return [image.shape[1], image.shape[0]]


def cut_line(image: np.ndarray, line: dict, x_scale: float = 1.0, y_scale: float = 1.0) -> np.ndarray:
    """A text line cut out of its page by its polygon (its box where it has none): the polygon's
    bounding rectangle, the pixels outside the polygon painted with the paper's brightness under
    them, so a neighbour's ascenders and descenders are gone. XmlError for a line outside the image."""
    if line["polygon"]:
        points = np.array(line["polygon"], np.float64)
    elif line["box"]:
        x, y, w, h = line["box"]
        points = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
    else:
        raise XmlError("without coordinates")
    points *= (x_scale, y_scale)
    height, width = image.shape[:2]
    if (points < -EDGE).any() or (points[:, 0] > width + EDGE).any() or (points[:, 1] > height + EDGE).any():
        raise XmlError(f"coordinates outside the {width}x{height} image (x {points[:, 0].min():.0f} to "
                       f"{points[:, 0].max():.0f}, y {points[:, 1].min():.0f} to {points[:, 1].max():.0f})",
                       "coordinates outside the image")
    points = np.clip(points, 0, (width, height))
    (left, top), (right, bottom) = np.floor(points.min(axis=0)).astype(int), np.ceil(points.max(axis=0)).astype(int)
    if right - left < 2 or bottom - top < 2:
        raise XmlError("under 2 pixels wide or high", "too small")
    crop = image[top:bottom, left:right].copy()
    inside = np.zeros(crop.shape[:2], np.uint8)
    cv2.fillPoly(inside, [np.round(points - (left, top)).astype(np.int32)], 1)
    window = max(3, (bottom - top) // 2)
    paper = np.dstack([paper_brightness(np.ascontiguousarray(crop[:, :, c]), window) for c in range(3)])
    crop[inside == 0] = np.round(paper[inside == 0]).astype(np.uint8)
    return crop


# -----------------------------------------------------------------------------
# an export folder -> a labels.csv of line images


def export_labels_csv(folder: str, cache_dir: str = CACHE_DIR) -> str:
    """The labels.csv (image_path,label,document) of every text line of the export in folder, cut
    out once into cache_dir/<folder's name>-<fingerprint>/ and reused while no file in folder
    changes (its fingerprint: the folder's path and every file's name, size and time). Written in a
    temporary folder, then renamed, so an interrupted run never leaves half a cache."""
    files = sorted(os.path.join(root, name) for root, _, names in os.walk(folder) for name in names)
    stats = [(os.path.relpath(path, folder), os.stat(path)) for path in files]
    listing = [(name, stat.st_size, stat.st_mtime_ns) for name, stat in stats]
    fingerprint = sha256(repr((CUT_VERSION, os.path.abspath(folder), listing)).encode("utf-8", "surrogateescape"))
    fingerprint = fingerprint.hexdigest()[:12]
    name = re.sub(r"[^\w.-]", "_", os.path.basename(os.path.abspath(folder)))
    cache = os.path.join(cache_dir, f"{name}-{fingerprint}")
    labels_csv = os.path.join(cache, "labels.csv")
    if os.path.isfile(labels_csv):
        with open(os.path.join(cache, "summary.txt"), encoding="utf-8") as f:
            print(f"Reusing the line images cut from {folder} in {cache}:\n{f.read()}", end="")
        return labels_csv
    build = f"{cache}.tmp-{os.getpid()}"
    os.makedirs(build)
    try:
        rows, summary = cut_export(folder, build)
        write_csv(os.path.join(build, "labels.csv"), ("image_path", "label", "document"), rows)
        write_file(os.path.join(build, "summary.txt"), summary)
        os.rename(build, cache)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    print(summary, end="")
    return labels_csv


def cut_export(folder: str, out_dir: str) -> tuple[list[list[str]], str]:
    """Cuts every text line of every page of the export in folder into out_dir/lines/<page>/<n>.png.
    Returns ([[image_path relative to out_dir, label, document], ...], the summary). A page or line
    that cannot be used is reported in one line as it is met and skipped; the rest go on."""
    rows, skipped, notes, counts = [], defaultdict(list), defaultdict(list), Counter()
    for xml_path in xml_files(folder):
        page_name = os.path.relpath(xml_path, folder)
        try:
            page = read_xml_page(xml_path)
        except XmlError as e:
            if e.reason == "not ALTO or PAGE XML":
                notes["files that are not ALTO or PAGE XML (METS and the like)"].append(page_name)
            else:
                print(f"  skipped {page_name}: {e}")
                skipped[f"files: {e.reason}"].append(page_name)
            continue
        counts["pages"] += 1
        rows += cut_page(xml_path, page, page_name, out_dir, counts, skipped, notes)
    summary = [f"{folder}: {counts['pages']} pages, {counts['lines']} text lines read, {len(rows)} line images kept"]
    for reason, where in [*skipped.items(), *notes.items()]:
        more = f" and {len(where) - SHOWN} more" if len(where) > SHOWN else ""
        summary.append(f"  {'skipped ' if reason in skipped else ''}{reason}: {len(where)} "
                       f"({', '.join(where[:SHOWN])}{more})")
    return rows, "\n".join(summary) + "\n"


def cut_page(xml_path, page, page_name, out_dir, counts, skipped, notes) -> list[list[str]]:
    """cut_export's work on one parsed page: its image, then its lines, each to a PNG."""
    try:
        image, x_scale, y_scale, matched = page_image(find_page_image(xml_path, page["image_name"]), page["size"])
    except XmlError as e:
        print(f"  skipped {page_name}: {e}")
        skipped[f"files: {e.reason}"].append(page_name)
        return []
    if matched:
        notes[f"pages {matched.split(' (')[0]}"].append(page_name)
    page_dir = os.path.join("lines", re.sub(r"[^\w.-]", "_", os.path.splitext(page_name)[0]))
    os.makedirs(os.path.join(out_dir, page_dir), exist_ok=True)
    rows = []
    for n, line in enumerate(page["lines"]):
        counts["lines"] += 1
        where = f"{page_name} line {line['id'] or n + 1}"
        if not line["text"]:
            skipped["lines: without text"].append(where)
            continue
        try:
            crop = cut_line(image, line, x_scale, y_scale)
        except XmlError as e:
            print(f"  skipped {where}: {e}")
            skipped[f"lines: {e.reason}"].append(where)
            continue
        image_path = os.path.join(page_dir, f"{n:04d}.png")
        if not cv2.imwrite(os.path.join(out_dir, image_path), crop):
            raise OSError(f"cannot write {os.path.join(out_dir, image_path)}")
        rows.append([image_path, line["text"], document_of(page_name)])
    return rows


def document_of(page_name: str) -> str:
    """The document (one writer) a page belongs to: <document> of a page named <document>-<n>
    (eScriptorium's names), or the folder above a Transkribus page/ folder, else the page itself."""
    folder, stem = os.path.split(os.path.splitext(page_name)[0])
    if os.path.basename(folder) == "page":
        return os.path.dirname(folder) or "."
    return os.path.join(folder, re.sub(r"-\d+$", "", stem))


# -----------------------------------------------------------------------------
# the split


def split_xml_export(folder: str, val_dir: str | None = None, val_csv: str | None = None, seed: int = 42,
                     cache_dir: str = CACHE_DIR) -> dict[str, list[list[str]]]:
    """{"train": [[image_path, label], ...], "val": [...], "test": []} of an export folder's lines:
    validated on val_dir (a second export) or val_csv (a labels.csv) when given, else split by
    document (split_by_document), so one writer's pages never land in both."""
    train_csv = export_labels_csv(folder, cache_dir)
    if val_dir:
        val_csv = export_labels_csv(val_dir, cache_dir)
    if val_csv:
        return split_labels_csv([train_csv], val_csv, seed=seed)
    rows = parse_labels_csv(train_csv)
    with open(train_csv, encoding="utf-8", newline="") as f:
        document = {row["image_path"]: row["document"] for row in csv.DictReader(f)}
    return split_by_document([(path, label, document[name]) for name, path, label in rows], seed)


def split_by_document(rows: list[tuple[str, str, str]], seed: int = 42, val_fraction: float = VAL_FRACTION):
    """(image path, label, document) rows -> {"train", "val", "test": []}: whole documents, shuffled
    with `seed`, go to validation until it holds val_fraction of the lines (at least one document,
    never all). An export of one document is split by line, with a note: its writer is in both."""
    documents = sorted({document for _, _, document in rows})
    if len(documents) < 2:
        print(f"  note: every page is of one document ({documents[0] if documents else 'none'}): split by line, "
              "so validation shares its writer (give --val-dir for a fair score)")
        return split_dataset([(None, path, label) for path, label, _ in rows], "random", "", seed=seed)
    random.Random(seed).shuffle(documents)
    lines_of = Counter(document for _, _, document in rows)
    val_documents, n_val = set(), 0
    for document in documents[:-1]:
        if n_val >= max(1, round(len(rows) * val_fraction)):
            break
        val_documents.add(document)
        n_val += lines_of[document]
    parts = {part: [[path, label] for path, label, document in rows if (document in val_documents) == (part == "val")]
             for part in ("train", "val")}
    print(f"split by document: {len(documents) - len(val_documents)} documents ({len(parts['train'])} lines) train, "
          f"{len(val_documents)} ({len(parts['val'])} lines) val")
    return {**parts, "test": []}
