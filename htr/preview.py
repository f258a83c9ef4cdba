"""See how the model reads: word images in a grid, each with its label and the prediction under it.

draw_preview makes the grid; write_preview saves it as a PNG (inferenceModel.py --preview), and
htr.training.callbacks.ValidationPreview puts it into TensorBoard every epoch during training.
"""
import unicodedata

import cv2
import numpy as np

from htr.files import write_file

COLUMNS = 4
IMAGE_BOX = (256, 64)  # width, height each word image is scaled to fit into
TEXT_LINE = 22  # pixels per line of text under an image
CELL = (IMAGE_BOX[0] + 8, IMAGE_BOX[1] + 2 * TEXT_LINE + 12)  # width, height of one image with its two lines
BLACK, GREEN, RED = (0, 0, 0), (0, 130, 0), (0, 0, 220)  # BGR


def draw_preview(images, labels, predictions):
    """BGR uint8 images (any sizes) -> one BGR uint8 grid, COLUMNS wide. Under each image its label
    and the prediction: green when they match, red (and a red frame) when not. A label of None
    (unlabelled image) shows the prediction alone, in black."""
    rows = max(1, -(-len(images) // COLUMNS))
    grid = np.full((rows * CELL[1], COLUMNS * CELL[0], 3), 255, np.uint8)
    for index, (image, label, prediction) in enumerate(zip(images, labels, predictions)):
        left, top = (index % COLUMNS) * CELL[0], (index // COLUMNS) * CELL[1]
        scale = min(IMAGE_BOX[0] / image.shape[1], IMAGE_BOX[1] / image.shape[0])
        width, height = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
        x, y = left + (CELL[0] - width) // 2, top + 4 + (IMAGE_BOX[1] - height) // 2
        grid[y:y + height, x:x + width] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)

        text_y = top + IMAGE_BOX[1] + 4 + TEXT_LINE - 6
        if label is None:
            put_text(grid, prediction, left, text_y, BLACK)
            continue
        wrong = prediction != label
        put_text(grid, f"label: {label}", left, text_y, BLACK)
        put_text(grid, f"read:  {prediction}", left, text_y + TEXT_LINE, RED if wrong else GREEN)
        if wrong:
            cv2.rectangle(grid, (left + 1, top + 1), (left + CELL[0] - 2, top + CELL[1] - 2), RED, 2)
    return grid


QUOTES = str.maketrans({"‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"'})


def drawable_text(text):
    """The text as OpenCV's built-in font can draw it, ASCII only: accents dropped ("é" -> "e", so a
    French reading stays legible), curly quotes made straight, any other character "?"."""
    text = unicodedata.normalize("NFKD", text.translate(QUOTES))
    return "".join(c if " " <= c <= "~" else "?" for c in text if not unicodedata.combining(c))


def put_text(grid, text, left, baseline, color):
    text = drawable_text(text)
    cv2.putText(grid, text, (left + 6, baseline), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)


def write_preview(path, images, labels, predictions):
    """Draws the grid into `path` (.png)."""
    ok, png = cv2.imencode(".png", draw_preview(images, labels, predictions))
    if not ok:
        raise OSError(f"could not encode the preview for {path}")
    write_file(path, png.tobytes())
