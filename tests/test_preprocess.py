"""One preprocessing for training and inference: an image read by the training pipeline and the
same file read by ImageToWordModel reach the network as the same array."""
import json
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from htr.data.augment import photo_like
from htr.data.pipeline import data_provider
from htr.recognizer import ImageToWordModel, predict_files

VOCAB = "abcdefghijklmnopqrstuvwxyz"


def identity_model(path, height, width, crop, keep_aspect_ratio):
    """An ONNX "network" whose output is its input, with train.py's metadata: what it returns is
    exactly what it was fed."""
    shape = ["batch", height, width, 3]
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "fed",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph)
    metadata = {"vocab": VOCAB, "height": height, "width": width, "keep_aspect_ratio": keep_aspect_ratio,
                "crop_to_ink": crop}
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(model, path)
    return ImageToWordModel(path)


def training_images(rows, configs):
    """The images of one batch as training prepares them (htr.data.pipeline.data_provider, no augmentation)."""
    images, _ = data_provider(rows, configs, batch_size=len(rows))[0]
    return np.float32(images)


def word_images(tmp_path):
    """A tight scan, the same word loosely cropped with an ascender and a descender, and a phone
    photo of it (tinted paper, uneven light, JPEG), as files."""
    scan = np.full((60, 160, 3), 255, np.uint8)
    scan[20:45, 20:28] = scan[20:28, 20:140] = scan[30:50, 100:108] = 20
    scan[5:20, 60:66] = scan[45:58, 120:126] = 40
    loose = cv2.copyMakeBorder(scan, 50, 30, 70, 40, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    photo = photo_like(loose, np.random.default_rng(3))
    paths = [str(tmp_path / name) for name in ("scan.png", "loose.png", "photo.jpg")]
    for path, image in zip(paths, (scan, loose, photo)):
        cv2.imwrite(path, image)
    return [(path, "word") for path in paths]


@pytest.mark.parametrize("crop, keep_aspect_ratio", [("columns", False), ("band", False), ("columns", True),
                                                     ("band", True), (None, False)])
def test_training_and_inference_feed_the_model_the_same_array(tmp_path, crop, keep_aspect_ratio):
    configs = SimpleNamespace(height=32, width=128, crop=crop, keep_aspect_ratio=keep_aspect_ratio, vocab=VOCAB,
                              max_text_length=8, ctc_shortcut=0.0)
    model = identity_model(str(tmp_path / "model.onnx"), configs.height, configs.width, crop, keep_aspect_ratio)
    rows = word_images(tmp_path)
    fed = []
    model.decode = lambda probabilities: (fed.append(np.array(probabilities)), ([""] * len(probabilities),
                                                                                [0.0] * len(probabilities)))[1]

    predict_files(model, [path for path, _ in rows], batch_size=len(rows))  # inferenceModel.py's way
    model.predict_batch([cv2.imread(path) for path, _ in rows])  # read_page's and app.py's way
    trained_on = training_images(rows, configs)
    assert trained_on.shape == (len(rows), configs.height, configs.width, 3)
    for images in fed:
        assert np.array_equal(images, trained_on)
    inked = (trained_on[1] < 128).any(axis=(0, 2)).mean()  # of the model's columns, those the loose word's ink reaches
    assert inked > 0.9 if crop and not keep_aspect_ratio else inked < 0.9
