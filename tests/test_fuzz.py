"""Fuzzing with hypothesis: whatever words.txt or an image file holds, the only exceptions that
escape are the project's own clear ones (DatasetError, UnreadableImage)."""
import os
import re
import tempfile

import cv2
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from htr.data.iam import DatasetError, parse_words_txt
from htr.images import UnreadableImage, decode_image, read_image

WORD_ID = re.compile(r"[a-z]\d{2}-\d{3}[a-z]?-\d{2}-\d{2}", re.ASCII)
WORD_IDS = st.from_regex(WORD_ID, fullmatch=True)
ANY_TEXT = st.text(max_size=12)  # any Unicode: spaces, tabs, \r, NUL, combining marks...
IMAGE_FILES = st.sampled_from(["none", "png", "empty", "garbage"])


def words_txt_line(word_id, flag, fields, label):
    return " ".join([word_id, flag, *fields, label])


LABELS = st.text(st.characters(exclude_characters=" \n\r", exclude_categories=["Cs"]), min_size=1, max_size=8)
LINES = st.one_of(
    st.builds(words_txt_line, WORD_IDS, st.sampled_from(["ok", "er"]), st.just("154 408 768 27 51 AT".split()), LABELS),
    st.builds(words_txt_line, WORD_IDS, st.sampled_from(["ok", "er", "xx", ""]), st.lists(ANY_TEXT, max_size=9), ANY_TEXT),
    ANY_TEXT, st.just("# a comment"), st.just(""),
)


def sample_png():
    ok, png = cv2.imencode(".png", np.full((8, 20), 128, np.uint8))
    return png.tobytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(LINES, IMAGE_FILES), max_size=12), st.one_of(st.just(b""), st.binary(max_size=40)), st.booleans())
def test_parse_words_txt_returns_usable_words_or_raises_dataset_error(lines, raw_bytes, drop_er):
    with tempfile.TemporaryDirectory() as folder:
        for line, image in lines:
            word_id = line.split(" ")[0]
            if image == "none" or not WORD_ID.fullmatch(word_id):  # only safe ids become file names
                continue
            form = word_id.split("-")
            path = os.path.join(folder, "words", form[0], f"{form[0]}-{form[1]}", f"{word_id}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write({"png": sample_png(), "empty": b"", "garbage": b"\x89PNG garbage"}[image])
        with open(os.path.join(folder, "words.txt"), "wb") as f:
            f.write("\n".join(line for line, _ in lines).encode() + raw_bytes)
        try:
            words = parse_words_txt(folder, drop_er=drop_er)
        except DatasetError as e:
            assert str(e)
            return
        for word_id, image_path, label in words:
            assert label and " " not in label
            assert cv2.imread(image_path) is not None


ENCODED_IMAGES = [cv2.imencode(ext, image)[1].tobytes() for ext in [".png", ".jpg", ".bmp", ".tiff"]
                  for image in [np.full((6, 9), 99, np.uint8), np.full((6, 9, 4), 99, np.uint8)]]


@st.composite
def damaged_images(draw):
    """A real image file, cut short and with a few bytes overwritten."""
    data = bytearray(draw(st.sampled_from(ENCODED_IMAGES)))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    for _ in range(draw(st.integers(0, 4))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.binary(max_size=200).map(lambda b: b"\x89PNG\r\n\x1a\n" + b), damaged_images()))
def test_decode_image_gives_a_bgr_image_or_says_why_not(data):
    try:
        image = decode_image(data)
    except UnreadableImage as e:
        assert str(e)
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3 and image.size > 0


def test_read_image_says_why_a_path_cannot_be_read(tmp_path):
    for path, reason in [(tmp_path / "missing.png", "No such file"), (tmp_path, "Is a directory"), ("a\0b.png", "null")]:
        try:
            read_image(str(path))
        except UnreadableImage as e:
            assert reason in str(e)
        else:
            raise AssertionError(f"{path} was read")
