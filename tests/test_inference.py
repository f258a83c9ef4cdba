"""inferenceModel.py on a real (tiny) trained model: batching, int8, preview, and every kind of bad input."""
import csv
import glob
import os
import re

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import run_script
from htr.images import decode_image, read_image
from htr.quantize import quantize_model
from htr.recognizer import ImageToWordModel, predict_files
from htr.preview import CELL, COLUMNS, drawable_text, write_preview


@pytest.fixture
def model_dir(trained_model_dir):
    """A real export by train.py: it reads badly after 3 epochs, but it is what users get."""
    return trained_model_dir


def demo_images(demo_dir):
    return sorted(glob.glob(os.path.join(demo_dir, "words", "**", "*.png"), recursive=True))


def image_paths(model_dir, part="train"):
    with open(os.path.join(model_dir, f"{part}.csv"), newline="", encoding="utf-8") as f:
        return [row["image_path"] for row in csv.DictReader(f)]


@pytest.mark.parametrize("decoder, lexicon", [("greedy", None), ("beam", None), ("beam", "lexicon.txt")])
def test_batched_and_one_by_one_predictions_are_identical(random_model_dir, demo_dir, decoder, lexicon):
    lexicon = lexicon and os.path.join(random_model_dir, lexicon)
    model = ImageToWordModel(random_model_dir, decoder, beam_width=4, lexicon_path=lexicon)
    paths = demo_images(demo_dir)[:30]
    one_by_one = [model.predict(read_image(path)) for path in paths]
    assert len(set(text for text, _ in one_by_one)) > 10  # the test means something only if the readings differ
    texts, confidences = predict_files(model, paths, batch_size=8)  # 4 batches, the last one short
    assert texts == [text for text, _ in one_by_one]
    assert confidences == pytest.approx([confidence for _, confidence in one_by_one], abs=1e-9)
    assert all(0 <= confidence <= 1 for confidence in confidences)


@pytest.mark.slow
def test_the_int8_model_runs_and_mostly_agrees_with_the_float_model(model_dir, random_model_dir):
    int8_path = quantize_model(model_dir)
    assert int8_path == os.path.join(model_dir, "model.int8.onnx") and not os.path.exists(int8_path + ".tmp")
    float_model, int8_model = ImageToWordModel(model_dir), ImageToWordModel(int8_path)
    assert int8_model.metadata == float_model.metadata
    paths = image_paths(model_dir, "val")
    readings = zip(predict_files(float_model, paths, 64)[0], predict_files(int8_model, paths, 64)[0])
    assert np.mean([a == b for a, b in readings]) >= 0.8
    assert quantize_model(model_dir) == int8_path  # made once, then reused

    # The random model's readings are long strings that one changed time step changes, so compare steps.
    float_model, int8_model = ImageToWordModel(random_model_dir), ImageToWordModel(quantize_model(random_model_dir))
    images = np.stack([float_model.resize(read_image(path)) for path in image_paths(random_model_dir)[:32]])
    float_steps = float_model.probabilities(images).argmax(axis=-1)
    assert np.mean(int8_model.probabilities(images).argmax(axis=-1) == float_steps) >= 0.9


def test_the_preview_grid_has_a_cell_per_image(tmp_path):
    images = [np.full((h, w, 3), 200, np.uint8) for h, w in [(40, 120), (1, 1), (30, 10000), (50, 50), (64, 256)]]
    path = str(tmp_path / "preview.png")
    write_preview(path, images, ["a", "b", "c", "d", None], ["a", "x", "c", "", "e"])
    assert cv2.imread(path).shape == (2 * CELL[1], COLUMNS * CELL[0], 3)
    assert os.listdir(tmp_path) == ["preview.png"]


def test_french_readings_are_drawn_legibly_in_opencvs_ascii_font():
    assert drawable_text("r\u00e9duction \u00e0 l\u2019usufruit, \u201cAo\u00fbt\u201d") == "reduction a l'usufruit, \"Aout\""
    assert drawable_text("e\u0301t\u00e9 \u00df \u20ac") == "ete ? ?"


@pytest.mark.slow
def test_beam_lexicon_preview_and_output_together(model_dir, tmp_path):
    output, preview = str(tmp_path / "predictions.csv"), str(tmp_path / "preview.png")
    result = run_script("inferenceModel.py", "--model", model_dir, "--decoder", "beam", "--beam-width", 5, "--lexicon",
                        os.path.join(model_dir, "lexicon.txt"), "--output", output, "--preview", preview)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(output, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image_path", "label", "prediction", "confidence", "cer"]
    assert cv2.imread(preview).shape[1] == COLUMNS * CELL[0]


def write_bad_images(folder):
    """One file of every kind users have; returns {name: True if it must be read, False if it must fail}."""
    word = np.full((40, 120), 255, np.uint8)
    cv2.putText(word, "the", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, 1, 0, 2)
    ok, png = cv2.imencode(".png", word)
    from PIL import Image  # pillow writes the 1-bit PNG OpenCV cannot
    Image.fromarray(word).convert("1").save(folder / "one_bit.png")
    cv2.imwrite(str(folder / "gray.png"), word)
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([np.zeros((40, 120, 3), np.uint8), 255 - word]))  # ink in alpha only
    cv2.imwrite(str(folder / "gray16.png"), word.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "one_pixel.png"), np.zeros((1, 1, 3), np.uint8))
    cv2.imwrite(str(folder / "wide.png"), cv2.resize(word, (10000, 40)))
    (folder / "empty.png").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image\n")
    (folder / "truncated.png").write_bytes(png.tobytes()[:len(png) // 2])
    (folder / "folder.png").mkdir()
    (folder / "locked.png").write_bytes(png.tobytes())
    os.chmod(folder / "locked.png", 0)
    readable = {"one_bit", "gray", "rgba", "gray16", "one_pixel", "wide"}
    failing = {"empty", "text", "truncated", "folder", "missing"}
    (readable if os.geteuid() == 0 else failing).add("locked")  # chmod 000 does not stop root from reading
    return readable, failing


@pytest.mark.slow
def test_bad_images_get_one_line_each_and_the_rest_is_read(model_dir, tmp_path):
    readable, failing = write_bad_images(tmp_path)
    with open(tmp_path / "labels.csv", "w", encoding="utf-8") as f:
        f.write("image_path,label\n" + "".join(f"{name}.png,the\n" for name in sorted(readable | failing)))
    result = run_script("inferenceModel.py", "--model", model_dir, "--csv", tmp_path / "labels.csv", "--output", tmp_path / "out.csv")

    assert result.returncode == 1 and "Traceback" not in result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("skipped ")]
    assert sorted(re.search(r"(\w+)\.png: ", line).group(1) for line in skipped) == sorted(failing)
    for name, reason in [("missing", "No such file"), ("empty", "empty"), ("text", "not an image file"),
                         ("truncated", "truncated"), ("folder", "directory")]:
        assert any(f"{name}.png: " in line and reason in line for line in skipped), (name, skipped)
    assert f"({len(readable)} words)" in result.stdout
    assert f"error: {len(failing)} of {len(readable) + len(failing)} images could not be read" in result.stderr


@pytest.mark.slow
def test_unlabelled_bad_images_fail_the_run_after_reading_the_others(model_dir, tmp_path):
    readable, failing = write_bad_images(tmp_path)
    result = run_script("inferenceModel.py", "--model", model_dir, tmp_path)  # a folder: the missing file is not in it
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert sorted(os.path.basename(line.split("\t")[0]) for line in result.stdout.splitlines()) == \
        sorted(f"{name}.png" for name in readable)


@pytest.mark.slow
def test_labels_the_model_cannot_spell_count_as_errors_and_are_reported_once(model_dir, tmp_path):
    path = image_paths(model_dir, "val")[0]
    with open(tmp_path / "labels.csv", "w", encoding="utf-8") as f:
        f.write(f"image_path,label\n{path},Grüße\n{path},ünder\n{path},the\n")
    result = run_script("inferenceModel.py", "--model", model_dir, "--csv", tmp_path / "labels.csv")
    assert result.returncode == 0, result.stderr[-3000:]
    notes = [line for line in result.stdout.splitlines() if "cannot write" in line]
    assert len(notes) == 1 and "2 labels" in notes[0] and "ßü" in notes[0]
    assert "(3 words)" in result.stdout


def onnx_model(path, input_shape, metadata):
    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "g",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, input_shape)])
    model = helper.make_model(graph)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)


@pytest.mark.parametrize("input_shape, metadata, message", [
    (["batch", 32, 128, 3], {}, "no vocabulary/input-size metadata"),
    (["batch", 10], {"vocab": '"ab"', "height": "32", "width": "128"}, "not [batch, 32, 128, 3] images"),
])
@pytest.mark.slow
def test_a_wrong_onnx_model_gets_one_clear_line(tmp_path, input_shape, metadata, message):
    path = str(tmp_path / "model.onnx")
    onnx_model(path, input_shape, metadata)
    result = run_script("inferenceModel.py", "--model", path, "--csv", tmp_path / "none.csv")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and message in result.stderr and path in result.stderr


def test_validation_preview_logs_images_and_text_to_tensorboard(tmp_path):
    import keras
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from htr.training.callbacks import ValidationPreview

    inputs = keras.Input((32, 128, 3))
    columns = keras.layers.Reshape((16, -1))(keras.layers.AveragePooling2D((32, 8))(inputs))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(columns))  # vocab "abc" + blank
    images = np.random.default_rng(0).integers(0, 255, (3, 32, 128, 3), dtype=np.uint8)
    # The reader reads, not the model being trained (train.py: the float32 copy of a bfloat16 model).
    callback = ValidationPreview(str(tmp_path), images, ["ab", "c", "|"], "abc", every_epochs=2, reader=model)
    callback.set_model(None)
    callback.on_train_begin()
    for epoch in range(4):
        callback.on_epoch_end(epoch)
    callback.on_train_end()

    events = EventAccumulator(str(tmp_path / "preview"), size_guidance={"tensors": 0}).Reload()
    images, texts = events.Tensors("validation preview"), events.Tensors("validation predictions")
    assert [event.step for event in images] == [event.step for event in texts] == [1, 3]
    width, height, png = images[0].tensor_proto.string_val  # how tf.summary.image stores an image
    assert (int(width), int(height)) == (COLUMNS * CELL[0], CELL[1])
    assert cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR).shape == (CELL[1], COLUMNS * CELL[0], 3)
    table = texts[0].tensor_proto.string_val[0].decode()
    assert "| `ab` |" in table and "`\\|`" in table  # a "|" in a label would otherwise split the table's cells


@pytest.mark.slow
def test_bench_inference_reports_every_path_on_the_same_images(model_dir):
    result = run_script("benchmarks.speed", "inference", "--model", model_dir, "--images", 8, "--quantize")
    assert result.returncode == 0, result.stderr[-3000:]
    assert ": 8 images from" in result.stdout
    for line in ["tutorial loop", "batched, files to text", "model alone", "int8 batched", "int8 model alone", "average CER"]:
        assert re.search(rf"^  {line}.*\d", result.stdout, re.MULTILINE), line


def test_a_phone_photo_is_turned_upright_by_its_exif_orientation():
    """Phones store a portrait photo as a landscape JPEG with an EXIF tag saying "turn 90 degrees"."""
    import io

    from PIL import Image
    stored = np.full((40, 100, 3), 255, np.uint8)
    stored[:, :10] = 0  # a black stripe on the stored image's left edge
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the camera was turned; show it rotated 90 degrees clockwise
    photo = io.BytesIO()
    Image.fromarray(stored).save(photo, "JPEG", exif=exif)
    upright = decode_image(photo.getvalue())
    assert upright.shape == (100, 40, 3)
    assert upright[:10].mean() < 60 and upright[-10:].mean() > 200  # the stripe is now along the top
