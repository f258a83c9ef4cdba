"""A page's reading as files: JSON (one word or line per row), ALTO or PAGE XML (htr.pages.xml_output),
and a picture of it."""
import json
import os

import cv2
import numpy as np

from htr.pages.xml_output import page_alto, page_pagexml
from htr.preview import drawable_text

PAGE_FORMATS = {"json": ".json", "alto": ".xml", "page": ".xml"}  # inferenceModel.py --format: the file each writes


def page_json(result):
    """read_page's result as JSON, one word or line per row."""
    def rows(items):
        return "[" + ",".join("\n  " + json.dumps(item, ensure_ascii=False) for item in items) + ("\n ]" if items else "]")
    return "{\n" + ",\n".join([f' "image": {json.dumps(result["image"], ensure_ascii=False)}', f' "words": {rows(result["words"])}',
                               f' "lines": {rows(result["lines"])}', f' "text": {json.dumps(result["text"], ensure_ascii=False)}']) + "\n}\n"


def page_document(result, page_format, image_shape, folder):
    """read_page's result, with "image": the image's path, as the text of a PAGE_FORMATS file to be
    written in `folder`. ALTO and PAGE XML name the image by its path from there, as their readers expect."""
    if page_format == "json":
        return page_json(result)
    try:
        image_name = os.path.relpath(result["image"], folder)
    except ValueError:  # Windows: the image is on another drive
        image_name = os.path.abspath(result["image"])
    height, width = image_shape[:2]
    return (page_alto if page_format == "alto" else page_pagexml)(result, image_name, width, height)


def draw_page(image, result):
    """The page with read_page's result on it: every word's box, and its reading above it on a white
    label, green when the model is confident (>= 0.8), orange when less (>= 0.5), red below."""
    page = image.copy()
    heights = [word["box"][3] for word in result["words"]]
    scale = max(0.4, float(np.median(heights)) / 80) if heights else 0.5  # readable at any resolution
    thickness = max(1, round(2 * scale))
    for word in result["words"]:
        x, y, w, h = word["box"]
        colour = (0, 150, 0) if word["confidence"] >= 0.8 else (0, 140, 255) if word["confidence"] >= 0.5 else (0, 0, 220)
        cv2.rectangle(page, (x, y), (x + w - 1, y + h - 1), colour, thickness)
        text = drawable_text(word["text"]) or "?"
        (text_w, text_h), below = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y - text_h - below - 2)
        cv2.rectangle(page, (x, top), (x + text_w + 4, top + text_h + below + 2), (255, 255, 255), cv2.FILLED)
        cv2.putText(page, text, (x + 2, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return page
