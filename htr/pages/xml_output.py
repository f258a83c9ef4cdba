"""A page's reading in the two XML formats archives and transcription tools share: ALTO 4.4
(libraries' OCR format) and PAGE XML 2019-07-15 (Transkribus, eScriptorium, OCR-D). Both hold
read_page's result: each line's outline (its polygon, else its box), baseline where known, words
with boxes and confidences, and text, in reading order; tests/schemas/ has the schemas they meet.

Coordinates are whole pixels of the image, clipped to it; a box [x, y, w, h] is the polygon of its
corners x..x+w, y..y+h, so the box comes back as the polygon's extent. Texts are Unicode NFC, with
the few characters XML cannot hold (control characters) replaced by U+FFFD."""
import datetime
import re
import unicodedata
import xml.etree.ElementTree as ET

SOFTWARE = "Handwritten text recognition with TensorFlow, mltu and ONNX (htr.pages.read_page)"
ALTO_NAMESPACE = "http://www.loc.gov/standards/alto/ns-v4#"
ALTO_SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-4.xsd"
PAGE_NAMESPACE = "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15"
PAGE_SCHEMA = PAGE_NAMESPACE + "/pagecontent.xsd"
XSI_NAMESPACE = "http://www.w3.org/2001/XMLSchema-instance"
NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")  # what XML 1.0 cannot hold


def page_alto(result, image_name, width, height):
    """read_page's result on an image `width` x `height` pixels, named `image_name`, as ALTO 4.4 text:
    one TextBlock of TextLines (box, BASELINE, Shape/Polygon), each of Strings (CONTENT, WC = the
    word's confidence, box) and SPs between them. ALTO has no line text of its own: a line's text is
    its Strings joined by spaces, so a line whose words do not spell its text (or that has none) gets
    the words of its text without positions; a line with no text gets one empty String."""
    root = ET.Element("alto", {"xmlns": ALTO_NAMESPACE, "xmlns:xsi": XSI_NAMESPACE,
                               "xsi:schemaLocation": f"{ALTO_NAMESPACE} {ALTO_SCHEMA}", "SCHEMAVERSION": "4.4"})
    description = ET.SubElement(root, "Description")
    ET.SubElement(description, "MeasurementUnit").text = "pixel"
    ET.SubElement(ET.SubElement(description, "sourceImageInformation"), "fileName").text = xml_text(image_name)
    processing = ET.SubElement(description, "Processing", {"ID": "processing_1"})
    ET.SubElement(processing, "processingCategory").text = "contentGeneration"
    ET.SubElement(processing, "processingDateTime").text = now()
    ET.SubElement(ET.SubElement(processing, "processingSoftware"), "softwareName").text = SOFTWARE
    page = ET.SubElement(ET.SubElement(root, "Layout"), "Page", {"ID": "page_1", "WIDTH": str(width), "HEIGHT": str(height),
                                                                 "PHYSICAL_IMG_NR": "1", "PROCESSINGREFS": "processing_1"})
    space = ET.SubElement(page, "PrintSpace", alto_box([0, 0, width, height]))
    lines = [(line, line_outline(line, width, height)) for line in result["lines"]]
    if lines:
        block = ET.SubElement(space, "TextBlock", {"ID": "block_1", **alto_box(extent([p for _, o in lines for p in o]))})
        for number, (line, outline) in enumerate(lines, 1):
            alto_line(block, number, line, outline, line_words(result, number - 1), width, height)
    return xml_document(root)


def alto_line(block, number, line, outline, words, width, height):
    """One TextLine of page_alto, its Strings with an SP between each two (where the words' boxes are
    known, the gap between them)."""
    box, text = clipped_box(line["box"], width, height), xml_text(line["text"])
    element = ET.SubElement(block, "TextLine", {"ID": f"line_{number}", **alto_box(box)})
    baseline = line_baseline(line, width, height)
    if baseline:
        element.set("BASELINE", points_text(baseline))
    ET.SubElement(ET.SubElement(element, "Shape"), "Polygon", {"POINTS": points_text(outline)})
    if not words or " ".join(xml_text(word["text"]) for word in words) != text:  # the text's words, no positions
        words = [{"text": part} for part in text.split(" ") if part] or [{"text": ""}]
    for index, word in enumerate(words, 1):
        if index > 1:
            left = sum(words[index - 2]["box"][::2]) if "box" in word else None  # the word before ends here
            ET.SubElement(element, "SP", {} if left is None else
                          alto_box(clipped_box([left, box[1], max(0, word["box"][0] - left), box[3]], width, height)))
        string = ET.SubElement(element, "String", {"ID": f"line_{number}_word_{index}", "CONTENT": xml_text(word["text"])})
        if "box" in word:
            string.attrib.update({"WC": confidence_text(word["confidence"]), **alto_box(clipped_box(word["box"], width, height))})


def page_pagexml(result, image_name, width, height):
    """read_page's result on an image `width` x `height` pixels, named `image_name`, as PAGE XML
    2019-07-15 text: one TextRegion of TextLines (Coords: the outline; Baseline where known; Words
    with Coords and their TextEquiv with the word's confidence; the line's TextEquiv/Unicode, with its
    confidence where known). A page without lines has no region."""
    root = ET.Element("PcGts", {"xmlns": PAGE_NAMESPACE, "xmlns:xsi": XSI_NAMESPACE,
                                "xsi:schemaLocation": f"{PAGE_NAMESPACE} {PAGE_SCHEMA}"})
    metadata = ET.SubElement(root, "Metadata")
    ET.SubElement(metadata, "Creator").text = SOFTWARE
    stamp = now()
    ET.SubElement(metadata, "Created").text = stamp
    ET.SubElement(metadata, "LastChange").text = stamp
    page = ET.SubElement(root, "Page", {"imageFilename": xml_text(image_name), "imageWidth": str(width), "imageHeight": str(height)})
    lines = [(line, line_outline(line, width, height)) for line in result["lines"]]
    if lines:
        region = ET.SubElement(page, "TextRegion", {"id": "region_1"})
        ET.SubElement(region, "Coords", {"points": points_text(box_polygon(extent([p for _, o in lines for p in o])))})
        for number, (line, outline) in enumerate(lines, 1):
            element = ET.SubElement(region, "TextLine", {"id": f"line_{number}"})
            ET.SubElement(element, "Coords", {"points": points_text(outline)})
            baseline = line_baseline(line, width, height)
            if baseline:
                ET.SubElement(element, "Baseline", {"points": points_text(baseline)})
            for index, word in enumerate(line_words(result, number - 1), 1):
                word_element = ET.SubElement(element, "Word", {"id": f"line_{number}_word_{index}"})
                ET.SubElement(word_element, "Coords", {"points": points_text(box_polygon(clipped_box(word["box"], width, height)))})
                page_text(word_element, word["text"], word["confidence"])
            page_text(element, line["text"], line.get("confidence"))
    return xml_document(root)


def page_text(element, text, confidence):
    """A PAGE TextEquiv (with conf when the confidence is known) holding `text` as its Unicode."""
    equiv = ET.SubElement(element, "TextEquiv", {} if confidence is None else {"conf": confidence_text(confidence)})
    ET.SubElement(equiv, "Unicode").text = xml_text(text)


def line_words(result, number):
    """The words of line `number` that read as something, in reading order: the words its text is made of."""
    return [word for word in result["words"] if word["line"] == number and word["text"]]


def line_outline(line, width, height):
    """A line's outline as (x, y) points: its polygon where read_page found one (3 points or more), else its box's corners."""
    polygon = line.get("polygon") or []
    if len(polygon) < 3:
        return box_polygon(clipped_box(line["box"], width, height))
    return [clipped_point(point, width, height) for point in polygon]


def line_baseline(line, width, height):
    """A line's baseline as (x, y) points, or None where read_page did not find one (both formats then leave it out)."""
    baseline = line.get("baseline") or []
    return [clipped_point(point, width, height) for point in baseline] if len(baseline) >= 2 else None


def box_polygon(box):
    x, y, w, h = box
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]


def extent(points):
    """The [x, y, w, h] box that (x, y) points span."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def clipped_point(point, width, height):
    return min(max(0, round(point[0])), width), min(max(0, round(point[1])), height)


def clipped_box(box, width, height):
    """[x, y, w, h] in whole pixels, inside the image."""
    (left, top), (right, bottom) = clipped_point(box[:2], width, height), clipped_point((box[0] + box[2], box[1] + box[3]), width, height)
    return [left, top, right - left, bottom - top]


def alto_box(box):
    return {"HPOS": str(box[0]), "VPOS": str(box[1]), "WIDTH": str(box[2]), "HEIGHT": str(box[3])}


def points_text(points):
    """(x, y) points as both formats write them: "x1,y1 x2,y2 ..."."""
    return " ".join(f"{x},{y}" for x, y in points)


def confidence_text(confidence):
    return f"{min(max(float(confidence), 0.0), 1.0):.4f}"


def xml_text(text):
    """Unicode NFC (as both formats ask), with what XML cannot hold replaced by U+FFFD."""
    return NOT_XML.sub("\ufffd", unicodedata.normalize("NFC", str(text)))


def now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def xml_document(root):
    """The element as a UTF-8 XML document, indented; ElementTree escapes <, & and quotes."""
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
