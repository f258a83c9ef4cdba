"""The one image decoder: every image the project reads (training, inference, pages, uploads)
comes through decode_image, so all of them see the same pixels."""
import os

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
IMAGE_SIGNATURES = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"BM": "BMP"}

# We report every unreadable image ourselves, in one line; OpenCV's own warnings would only add noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class UnreadableImage(Exception):
    """An image file that cannot be read; str(e) says why."""


def read_image(path, grey_in_one_channel=False):
    """The image in `path` as BGR uint8 (decode_image), or UnreadableImage saying why not."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (OSError, ValueError) as e:  # missing, a folder, no permission; ValueError: a NUL in the path
        raise UnreadableImage(getattr(e, "strerror", None) or str(e)) from None
    return decode_image(data, grey_in_one_channel)


def decode_image(data, grey_in_one_channel=False):
    """Image file bytes -> BGR uint8, whatever the file holds: grayscale, 1-bit, 16-bit, or with
    transparency (laid on white paper, so transparent ink-on-nothing does not turn black).
    grey_in_one_channel: a grayscale image stays (height, width), a third of the memory
    (htr.data.pipeline keeps every training image in memory); GRAY2BGR gives the same three channels."""
    if not data:
        raise UnreadableImage("empty file (0 bytes)")
    try:
        # A JPEG is read as colour, which turns it upright by its EXIF orientation: phones save photos
        # sideways with such a tag. (IMREAD_UNCHANGED ignores the tag; a JPEG has no alpha or 16 bits to keep.)
        flags = cv2.IMREAD_COLOR if data.startswith(b"\xff\xd8\xff") else cv2.IMREAD_UNCHANGED
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:  # e.g. a header announcing more pixels than OpenCV allows
        image = None
    if image is None or image.size == 0:
        kind = next((kind for signature, kind in IMAGE_SIGNATURES.items() if data.startswith(signature)), None)
        raise UnreadableImage(f"damaged or truncated {kind} file" if kind else "not an image file OpenCV can read")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise UnreadableImage(f"{image.dtype} pixels; save it as an 8- or 16-bit image")
    if image.ndim == 2:
        return image if grey_in_one_channel else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:] / 255.0
        return (image[:, :, :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return image


def list_images(paths):
    """Files and folders -> image files: a folder's images (by extension), recursively, in name order."""
    images = []
    for path in paths:
        if os.path.isdir(path):
            for folder, _, files in sorted(os.walk(path)):
                images += [os.path.join(folder, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        else:
            images.append(path)
    return images
