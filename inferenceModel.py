"""Read handwritten words with an exported ONNX model, and score it.

    python inferenceModel.py                            # newest model under Models/, scored on its val.csv
    python inferenceModel.py --model DIR --csv FILE     # any model (.onnx or its folder), any labelled CSV
    python inferenceModel.py --model DIR a.png words/   # unlabelled images: prints path<TAB>text<TAB>confidence
    python inferenceModel.py --decoder beam --lexicon Models/.../lexicon.txt   # slower, more accurate
    python inferenceModel.py --quantize --preview preview.png                  # int8 model; see the results
    python inferenceModel.py --page scan.jpg --output-dir pages/ --preview     # a whole line or page: words, lines, text

The .onnx file is all it needs: train.py stores the vocabulary and input size in its metadata.
A page's way to text: segmentation.py finds its lines and words, ImageToWordModel.read_page reads them.
An image's way to a word, top to bottom: read_image -> ImageToWordModel.resize -> .probabilities
(the network) -> .decode (ctc_decoding.py), which also gives each text a confidence: the model's
probability of that text. predict_files runs it over many files in batches.
"""
import argparse
import glob
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import onnxruntime as ort
import pandas as pd
from mltu.inferenceModel import OnnxInferenceModel
from mltu.transformers import ImageResizer
from mltu.utils.text_utils import edit_distance
from tqdm import tqdm

from htr.data.augment import crop_to_ink
from htr.decoding import beam_search, confidences, greedy_decode, lexicon_decode, read_lexicon
from htr.pages.segmentation import Word, find_words, reading_images

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
IMAGE_SIGNATURES = {b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"II*\x00": "TIFF", b"MM\x00*": "TIFF", b"BM": "BMP"}
PREVIEW_IMAGES = 24  # --preview shows the first this many images
MAX_PAGE_PIXELS = 50_000_000  # read_page works on the full image: a 48-megapixel phone photo, not much more
PAGE_BATCH = 64  # read_page reads this many words per model call
WHOLE_WORD_CHECK = 16  # read_page also reads an image whole if it finds at most this many words in it,
WHOLE_WORD_CONFIDENCE = 0.5  # and keeps that reading if at least this sure of it (a whole line, squashed, reads unsure)
CALIBRATION_IMAGES = 256  # --quantize measures the network's value ranges on this many images
# predict_files works on this many batches at once, one per core this process may use.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

# We report every unreadable image ourselves, in one line; OpenCV's own warnings would only add noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


class ModelFileError(Exception):
    pass


class UnreadableImage(Exception):
    """An image file that cannot be read; str(e) says why."""


def read_image(path):
    """The image in `path` as BGR uint8, or UnreadableImage saying why not."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (OSError, ValueError) as e:  # missing, a folder, no permission; ValueError: a NUL in the path
        raise UnreadableImage(getattr(e, "strerror", None) or str(e)) from None
    return decode_image(data)


def decode_image(data):
    """Image file bytes -> BGR uint8, whatever the file holds: grayscale, 1-bit, 16-bit, or with
    transparency (laid on white paper, so transparent ink-on-nothing does not turn black)."""
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
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:] / 255.0
        return (image[:, :, :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
    return image


def session_options():
    """One onnxruntime thread per model call: predict_files runs one batch per core at once
    instead. Measured on 2 cores (bench.py inference): one 2-thread call at a time makes every
    layer wait for its slower half, and for any image reader that takes the other core; two
    1-thread calls at once ran the model alone ~11% faster, and files-to-text ~13% faster.
    (With no thread pool there are no idle threads left to spin-wait, which had slowed a shared
    machine by more than 2x.)"""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return options


def execution_providers():
    """The GPU when onnxruntime-gpu is installed and finds one (README: GPUs), else the CPU."""
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class ImageToWordModel(OnnxInferenceModel):
    """The ONNX model plus what it needs around it: resizing in, CTC decoding out.

    It does not call mltu's OnnxInferenceModel.__init__, which runs Python's eval() on every
    metadata string of the file (so a crafted model file could run code); the metadata here
    is JSON and read with json.loads. The attributes are the same as mltu's."""

    def __init__(self, model_path, decoder="greedy", beam_width=10, lexicon_path=None):
        if os.path.isdir(model_path):
            model_path = os.path.join(model_path, "model.onnx")
        if not os.path.isfile(model_path):
            raise ModelFileError(f"no model at {model_path}; pass --model with a .onnx file or a folder holding model.onnx")
        self.model_path = model_path
        try:
            self.model = ort.InferenceSession(model_path, session_options(), providers=execution_providers())
        except Exception as e:
            raise ModelFileError(f"{model_path} is not a usable ONNX model ({str(e).splitlines()[0][:200]})") from e

        try:
            self.metadata = {key: json.loads(value) for key, value in self.model.get_modelmeta().custom_metadata_map.items()}
            self.vocab = self.metadata["vocab"]
            self.height, self.width = int(self.metadata["height"]), int(self.metadata["width"])
            self.keep_aspect_ratio = bool(self.metadata.get("keep_aspect_ratio", False))
            # How train.py cut the words: "columns" or "band" (models that wrote true: columns; before that, none).
            self.crop = {True: "columns", False: None}.get(self.metadata.get("crop_to_ink", False),
                                                          self.metadata.get("crop_to_ink"))
            if self.crop not in (None, "columns", "band"):
                raise ValueError
        except (KeyError, ValueError, TypeError):
            raise ModelFileError(f"{model_path} has no vocabulary/input-size metadata; export it with train.py") from None
        self.input_shapes = [meta.shape for meta in self.model.get_inputs()]
        self.input_names = [meta.name for meta in self.model.get_inputs()]
        self.output_names = [meta.name for meta in self.model.get_outputs()]
        if len(self.input_shapes) != 1 or list(self.input_shapes[0][1:]) != [self.height, self.width, 3]:
            raise ModelFileError(f"{model_path} takes input {self.input_shapes}, not [batch, {self.height}, {self.width}, 3] images")

        self.decoder, self.beam_width = decoder, beam_width
        self.lexicon = None
        if lexicon_path:
            try:
                self.lexicon, unspellable = read_lexicon(lexicon_path, self.vocab)
            except (OSError, UnicodeDecodeError) as e:
                raise ModelFileError(f"cannot read the lexicon {lexicon_path}: {e}") from e
            if not self.lexicon:
                raise ModelFileError(f"{lexicon_path} has no word the model can spell; pass a UTF-8 file with one word per line")
            if unspellable:
                print(f"lexicon {lexicon_path}: left out {unspellable} words with characters the model cannot write",
                      file=sys.stderr)

    def resize(self, image):
        """Any BGR image -> the model's input size, exactly as train.py's CropToInk and ImageResizer
        do it: cut to the ink at the left and right (--crop band: to its writing band above and below
        too), then stretched, or scaled to fit and padded with white."""
        if self.crop:
            image = crop_to_ink(image, band=self.crop == "band")
        if self.keep_aspect_ratio:
            return ImageResizer.resize_maintaining_aspect_ratio(image, self.width, self.height, (255, 255, 255))
        return cv2.resize(image, (self.width, self.height))

    def probabilities(self, images):
        """Resized images (batch, height, width, 3) -> (batch, time steps, len(vocab) + 1)."""
        return self.model.run(self.output_names, {self.input_names[0]: np.asarray(images, dtype=np.float32)})[0]

    def decode(self, probabilities):
        """Per-time-step probabilities -> (texts, confidences), with the decoder and lexicon chosen
        in __init__; each confidence in [0, 1] is the model's probability of its text (ctc_decoding.confidences)."""
        if self.decoder == "greedy":
            texts = greedy_decode(probabilities, self.vocab)
        else:
            texts = [beam_search(p, self.vocab, self.beam_width)[0][0] for p in probabilities]
        if self.lexicon:
            texts = [lexicon_decode(p, text, self.lexicon, self.vocab) for p, text in zip(probabilities, texts)]
        return texts, confidences(probabilities, texts, self.vocab)

    def predict_batch(self, images):
        """BGR uint8 images of any size -> (predicted strings, their confidences), in one model call."""
        return self.decode(self.probabilities(np.stack([self.resize(image) for image in images])))

    def predict(self, image):
        """One BGR uint8 image -> (text, confidence)."""
        texts, text_confidences = self.predict_batch([image])
        return texts[0], text_confidences[0]

    def read_page(self, image):
        """A BGR uint8 image of a word, a line or a page -> {"words": [{"box": [x, y, w, h], "text",
        "confidence", "line"}, ...] in reading order, "lines": [{"box", "text"}, ...], "text": the lines
        joined by newlines}; boxes in pixels of `image`. segmentation.py finds the words; each is read
        without the other words' ink, dark on white, cut in two ways (tight, as IAM cuts words, and to its
        line's band, as gw_words does); the page is read the way the model is more confident of overall,
        which is the way its training words were cut (per word, a confident misreading of the wrong cut
        would win too often). An image with a few words may be one word cut by hand that segmentation
        broke up (a small image, or strokes of the neighbouring lines at its edges): it is also read
        whole, as predict reads it, and so read when that reading says something and is likelier than
        all its pieces' together (and, for more than one piece, likely).
        UnreadableImage for an image it cannot work on; a page without writing gives no words."""
        check_page(image)
        lines = find_words(image)
        words = [(number, word) for number, line in enumerate(lines) for word in line]
        readings = {"tight": ([], []), "band": ([], [])}  # texts and confidences of each cut
        for start in range(0, len(words), PAGE_BATCH // 2):
            cuts = [reading_images(word) for _, word in words[start:start + PAGE_BATCH // 2]]
            batch_texts, batch_confidences = self.predict_batch([image for pair in cuts for image in pair])
            for index, cut in enumerate(("tight", "band")):
                readings[cut][0].extend(batch_texts[index::2])
                readings[cut][1].extend(round(float(confidence), 4) for confidence in batch_confidences[index::2])
        texts, certainties = max(readings.values(), key=lambda reading: sum(reading[1]))
        if 0 < len(words) <= WHOLE_WORD_CHECK:  # perhaps one word cut by hand, broken up
            whole_text, whole_certainty = self.predict_batch([image])
            floor = WHOLE_WORD_CONFIDENCE if len(words) > 1 else 0  # one piece: whichever reading is likelier
            if whole_text[0] and whole_certainty[0] > max(floor, np.prod(certainties)):
                left, top = min(word.box[0] for _, word in words), min(word.box[1] for _, word in words)
                right = max(word.box[0] + word.box[2] for _, word in words)
                bottom = max(word.box[1] + word.box[3] for _, word in words)
                lines = [[Word([left, top, right - left, bottom - top], None, None)]]
                words, texts, certainties = [(0, lines[0][0])], whole_text, [round(float(whole_certainty[0]), 4)]
        result = {"words": [{"box": word.box, "text": text, "confidence": certainty, "line": number}
                            for (number, word), text, certainty in zip(words, texts, certainties)], "lines": []}
        for number, line in enumerate(lines):
            left, top = min(word.box[0] for word in line), min(word.box[1] for word in line)
            right = max(word.box[0] + word.box[2] for word in line)
            bottom = max(word.box[1] + word.box[3] for word in line)
            text = " ".join(word["text"] for word in result["words"] if word["line"] == number and word["text"])
            result["lines"].append({"box": [left, top, right - left, bottom - top], "text": text})
        result["text"] = "\n".join(line["text"] for line in result["lines"])
        return result


def check_page(image):
    """UnreadableImage unless `image` is something read_page can look for writing in."""
    if image is None or getattr(image, "size", 0) == 0:
        raise UnreadableImage("empty image (no pixels)")
    height, width = image.shape[:2]
    if min(height, width) < 8:
        raise UnreadableImage(f"too small ({width}x{height} pixels): a page needs at least 8 pixels each way")
    if height * width > MAX_PAGE_PIXELS:
        raise UnreadableImage(f"too large ({width}x{height}, {height * width / 1e6:.0f} megapixels): scale it down to at most "
                              f"{MAX_PAGE_PIXELS / 1e6:.0f} megapixels")
    if int(image.max()) - int(image.min()) < 8:
        raise UnreadableImage("blank (one flat colour): there is nothing to read")


def predict_files(model, paths, batch_size, progress=False):
    """(texts, confidences) for image files: None and None for a file that cannot be read, reported
    in one line on stderr.

    Each core reads, resizes, runs and decodes a batch of its own, so both reading (OpenCV releases
    Python's GIL while it decodes and resizes) and the network keep every core busy."""
    def read_and_predict(batch):
        images = np.empty((len(batch), model.height, model.width, 3), np.float32)  # the network's input, filled in place
        readable = []
        for row, path in enumerate(batch):
            try:
                images[len(readable)] = model.resize(read_image(path))
                readable.append(row)
            except UnreadableImage as e:
                tqdm.write(f"skipped {path}: {e}", file=sys.stderr)  # above the progress bar, not inside it
        texts, text_confidences = [None] * len(batch), [None] * len(batch)
        if readable:
            for row, text, confidence in zip(readable, *model.decode(model.probabilities(images[:len(readable)]))):
                texts[row], text_confidences[row] = text, confidence
        return texts, text_confidences

    batches = [paths[start:start + batch_size] for start in range(0, len(paths), batch_size)]
    predictions, prediction_confidences = [], []
    with ThreadPoolExecutor(max_workers=CORES) as pool:
        for texts, text_confidences in tqdm(pool.map(read_and_predict, batches), total=len(batches), disable=not progress,
                                            unit="batch"):
            predictions += texts
            prediction_confidences += text_confidences
    return predictions, prediction_confidences


def newest_model_dir(root="Models"):
    models = glob.glob(os.path.join(root, "**", "model.onnx"), recursive=True)
    if not models:
        raise ModelFileError(f"no model.onnx under {root}/; train one with python train.py, or pass --model")
    return os.path.dirname(max(models, key=os.path.getmtime))


def read_labelled_csv(csv_path):
    """Rows of (image path, label). Relative paths resolve against the CSV's folder, then the working directory."""
    try:
        # keep_default_na=False: words such as "null" or "NA" are labels, not missing values.
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ModelFileError(f"cannot read {csv_path}: {e}") from e
    if not {"image_path", "label"} <= set(frame.columns):
        raise ModelFileError(f"{csv_path} needs the columns image_path,label (it has {','.join(frame.columns)})")
    rows = []
    for image_path, label in zip(frame["image_path"], frame["label"]):
        beside_csv = os.path.join(os.path.dirname(csv_path), image_path)
        rows.append((beside_csv if os.path.exists(beside_csv) else image_path, label))
    return rows


def list_images(paths):
    images = []
    for path in paths:
        if os.path.isdir(path):
            for folder, _, files in sorted(os.walk(path)):
                images += [os.path.join(folder, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
        else:
            images.append(path)
    return images


def score(rows, predictions):
    """The seed's average CER (mean of per-word edits / length), corpus CER (all edits / all
    characters) and word accuracy, over the rows that have a prediction."""
    per_word_cer, edits, characters, correct = [], 0, 0, 0
    for (_, label), prediction in zip(rows, predictions):
        if prediction is None:
            per_word_cer.append(None)
            continue
        distance = edit_distance(list(prediction), list(label))
        per_word_cer.append(distance / max(len(label), 1))
        edits, characters, correct = edits + distance, characters + len(label), correct + (prediction == label)
    scored = [cer for cer in per_word_cer if cer is not None]
    summary = {
        "words": len(scored),
        "average_cer": float(np.mean(scored)) if scored else float("nan"),
        "corpus_cer": edits / characters if characters else float("nan"),
        "word_accuracy": correct / len(scored) if scored else float("nan"),
    }
    return summary, per_word_cer


def confidence_auroc(rows, predictions, prediction_confidences):
    """How well the confidence ranks errors: the chance that a randomly chosen correct reading has a
    higher confidence than a randomly chosen wrong one (ties count half), i.e. the area under the
    ROC curve of confidence as a detector of correct readings. NaN unless some are right and some wrong."""
    read = [(prediction == label, confidence) for (_, label), prediction, confidence
            in zip(rows, predictions, prediction_confidences) if prediction is not None]
    right = np.array([confidence for correct, confidence in read if correct])
    wrong = np.sort([confidence for correct, confidence in read if not correct])
    if not len(right) or not len(wrong):
        return float("nan")
    below, not_above = np.searchsorted(wrong, right, "left"), np.searchsorted(wrong, right, "right")
    return float((below + not_above).sum() / 2 / (len(right) * len(wrong)))


def write_predictions(rows, predictions, prediction_confidences, per_word_cer, output_path):
    frame = pd.DataFrame({"image_path": [path for path, _ in rows], "label": [label for _, label in rows],
                          "prediction": predictions, "confidence": prediction_confidences, "cer": per_word_cer})
    frame.to_csv(output_path + ".tmp", index=False)
    os.replace(output_path + ".tmp", output_path)


def quantize_model(model_path):
    """The int8 copy of the model, model.int8.onnx beside it: made the first time (and again
    whenever model.onnx is newer), calibrated on the first images of the model folder's train.csv.

    Measured on 2 CPU cores (bench.py inference): dynamic quantization alone runs the convolutions,
    most of the time, as ConvInteger, 8x slower than float. So the convolutions, LeakyReLUs and
    residual Adds are quantized statically (uint8 activations with ranges measured on the calibration
    images, int8 weights per channel: the fast pair for onnxruntime's CPU kernels), after
    quant_pre_process has folded the batch normalizations into the convolutions (else they stay
    behind as slow float Mul/Add). The LSTM and the last MatMul are then quantized dynamically.
    Each activation range covers 99.99% of the calibration values, not all: on the 20-minute gw_words
    model a few extreme values stretched min-max ranges so far that int8 read +0.78 points CER (+0.22 here).
    Weights use 7 of their 8 bits (reduce_range): CPUs without VNNI instructions (AVX2 only) multiply
    uint8 by int8 in 16-bit sums that can saturate; with all 8 bits the int8 model read +1.41 points
    of average CER there (+0.25 with 7), so the same model.int8.onnx is safe on every CPU."""
    import logging
    import tempfile

    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = ImageToWordModel(model_path)
    int8_path = model.model_path[:-len(".onnx")] + ".int8.onnx"
    if os.path.isfile(int8_path) and os.path.getmtime(int8_path) >= os.path.getmtime(model.model_path):
        return int8_path
    train_csv = os.path.join(os.path.dirname(model.model_path), "train.csv")
    if not os.path.isfile(train_csv):
        raise ModelFileError(f"--quantize calibrates on the training images listed in {train_csv}, which is missing; "
                             "keep train.py's train.csv beside the model")
    images = []
    for path, _ in read_labelled_csv(train_csv)[:CALIBRATION_IMAGES]:
        try:
            images.append(model.resize(read_image(path)))
        except UnreadableImage:
            pass
    if not images:
        raise ModelFileError(f"none of the images listed in {train_csv} can be read: nothing to calibrate on")

    # Batches of one size: onnxruntime's percentile calibration stacks every batch's values into one
    # array, so it fails on a short last batch; the few images past the last full batch are left out.
    size = min(32, len(images))

    class Calibration(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{model.input_names[0]: np.float32(images[start:start + size])}
                                 for start in range(0, len(images) - size + 1, size)])

        def get_next(self):
            return next(self.batches, None)

    logging.disable(logging.WARNING)  # the quantizer warns about every shape tensor it rightly leaves alone
    try:
        with tempfile.TemporaryDirectory() as folder:
            folded, static = os.path.join(folder, "folded.onnx"), os.path.join(folder, "static.onnx")
            quant_pre_process(model.model_path, folded)
            quantize_static(folded, static, Calibration(), quant_format=QuantFormat.QOperator, per_channel=True,
                            op_types_to_quantize=["Conv", "LeakyRelu", "Add"],
                            calibrate_method=CalibrationMethod.Percentile, extra_options={"CalibPercentile": 99.99},
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True)
            quantize_dynamic(static, os.path.join(folder, "int8.onnx"), op_types_to_quantize=["LSTM", "MatMul"],
                             weight_type=QuantType.QInt8, reduce_range=True)
            quantized = onnx.load(os.path.join(folder, "int8.onnx"))
    finally:
        logging.disable(logging.NOTSET)
    del quantized.metadata_props[:]  # exactly the float model's: the vocabulary and input size, as JSON
    quantized.metadata_props.extend(onnx.load(model.model_path).metadata_props)
    onnx.save(quantized, int8_path + ".tmp")
    os.replace(int8_path + ".tmp", int8_path)
    return int8_path


def read_pages(model, paths, output_dir, preview):
    """inferenceModel.py --page: each image's read_page result to output_dir/NAME.json ("image": its path),
    its text to stdout and, with preview, its picture to output_dir/NAME.preview.png. An image that
    cannot be read is reported in one line and the others go on; the exit code says if any failed."""
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        sys.exit(f"error: cannot create --output-dir {output_dir}: {e.strerror or e}")
    failed = 0
    for path in paths:
        try:
            image = read_image(path)
            result = {"image": path, **model.read_page(image)}
        except UnreadableImage as e:
            print(f"skipped {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        stem = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0])
        try:
            write_file(stem + ".json", page_json(result).encode("utf-8"))
            if preview:
                write_file(stem + ".preview.png", cv2.imencode(".png", draw_page(image, result))[1].tobytes())
        except OSError as e:
            sys.exit(f"error: cannot write {stem}.json: {e.strerror or e}; check that {output_dir} is writable")
        print(f"== {path}: {len(result['words'])} words in {len(result['lines'])} lines -> {stem}.json")
        print(result["text"] if result["words"] else "(no writing found)")
    if failed:
        sys.exit(f"error: {failed} of {len(paths)} images could not be read (listed above)")


def page_json(result):
    """read_page's result as JSON, one word or line per row."""
    def rows(items):
        return "[" + ",".join("\n  " + json.dumps(item, ensure_ascii=False) for item in items) + ("\n ]" if items else "]")
    return "{\n" + ",\n".join([f' "image": {json.dumps(result["image"], ensure_ascii=False)}', f' "words": {rows(result["words"])}',
                               f' "lines": {rows(result["lines"])}', f' "text": {json.dumps(result["text"], ensure_ascii=False)}']) + "\n}\n"


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
        text = "".join(c if " " <= c <= "~" else "?" for c in word["text"]) or "?"  # OpenCV's font has ASCII only
        (text_w, text_h), below = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(0, y - text_h - below - 2)
        cv2.rectangle(page, (x, top), (x + text_w + 4, top + text_h + below + 2), (255, 255, 255), cv2.FILLED)
        cv2.putText(page, text, (x + 2, top + text_h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return page


def write_file(path, data):
    """Writes under a temporary name first, so no half-written file is left."""
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*",
                        help="image files or folders to read (no labels: prints path<TAB>text<TAB>confidence)")
    parser.add_argument("--model", help="a .onnx file or a model folder (default: the newest model.onnx under Models/)")
    parser.add_argument("--csv", help="labelled images to score, columns image_path,label (default: the model folder's val.csv)")
    parser.add_argument("--output", help="write image_path,label,prediction,confidence,cer for every scored row to this CSV")
    parser.add_argument("--batch-size", type=int, default=64, help="images per model call (default %(default)s)")
    parser.add_argument("--decoder", choices=["greedy", "beam"], default="greedy",
                        help="greedy: best character per time step (default); beam: CTC prefix beam search")
    parser.add_argument("--beam-width", type=int, default=10, help="texts the beam search keeps (default %(default)s)")
    parser.add_argument("--lexicon", metavar="FILE",
                        help="one word per line (train.py writes the training words to the model folder's lexicon.txt): "
                             "read the most likely of these words, unless the free reading is far more likely")
    parser.add_argument("--quantize", action="store_true",
                        help="make (or reuse) model.int8.onnx beside the model, calibrated on the folder's train.csv, and use it")
    parser.add_argument("--preview", metavar="FILE.png", nargs="?", const="",
                        help=f"draw the first {PREVIEW_IMAGES} images with label and prediction; with --page (no FILE): "
                             "draw each page's words and readings to DIR/NAME.preview.png")
    parser.add_argument("--page", nargs="+", metavar="IMAGE",
                        help="read whole lines or pages: find the words, read them, write DIR/NAME.json and print the text")
    parser.add_argument("--output-dir", metavar="DIR", help="with --page: where the .json (and .preview.png) files go")
    args = parser.parse_args(argv)
    if args.page and not args.output_dir:
        parser.error("--page needs --output-dir DIR, the folder for the NAME.json results")
    if args.preview == "" and not args.page:
        parser.error("--preview needs a FILE.png to write (only with --page does it name the files itself)")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.beam_width < 1:
        parser.error(f"--beam-width must be at least 1, got {args.beam_width}")

    try:
        model_path = args.model or newest_model_dir()
        if args.quantize:
            model_path = quantize_model(model_path)
        model = ImageToWordModel(model_path, args.decoder, args.beam_width, args.lexicon)
        if args.page:
            return read_pages(model, args.page, args.output_dir, args.preview is not None)
        if args.images:
            rows = [(path, None) for path in list_images(args.images)]
            if not rows:
                raise ModelFileError(f"no {'/'.join(IMAGE_EXTENSIONS)} files in {' '.join(args.images)}")
        else:
            csv_path = args.csv or os.path.join(os.path.dirname(model.model_path), "val.csv")
            rows = read_labelled_csv(csv_path)
            print(f"Model {model.model_path}, {len(rows)} labelled images from {csv_path}")
    except ModelFileError as e:
        sys.exit(f"error: {e}")

    predictions, prediction_confidences = predict_files(model, [path for path, _ in rows], args.batch_size,
                                                        progress=not args.images)
    if args.images:
        for (path, _), text, confidence in zip(rows, predictions, prediction_confidences):
            if text is not None:
                print(f"{path}\t{text}\t{confidence:.4f}")
    else:
        unknown = sorted(set("".join(label for _, label in rows)) - set(model.vocab))
        if unknown:
            n_labels = sum(not set(label) <= set(model.vocab) for _, label in rows)
            print(f"note: {n_labels} labels use characters the model cannot write ({''.join(unknown)}); they count as errors")
        summary, per_word_cer = score(rows, predictions)
        print(f"Average CER: {summary['average_cer']:.4f}")
        print(f"Corpus CER: {summary['corpus_cer']:.4f}")
        print(f"Word accuracy: {summary['word_accuracy']:.4f} ({summary['words']} words)")
        auroc = confidence_auroc(rows, predictions, prediction_confidences)
        print(f"Confidence AUROC: {auroc:.4f} (how often a correct reading has a higher confidence than a wrong one)"
              if not np.isnan(auroc) else "Confidence AUROC: none (it needs some readings right and some wrong)")
    try:
        if args.output and not args.images:
            target = args.output
            write_predictions(rows, predictions, prediction_confidences, per_word_cer, args.output)
        if args.preview:
            target = args.preview
            from htr.preview import write_preview  # preview.py also holds a Keras callback: load Keras only when asked
            shown = [(path, label, text) for (path, label), text in zip(rows, predictions) if text is not None]
            shown = shown[:PREVIEW_IMAGES]
            write_preview(args.preview, [read_image(path) for path, _, _ in shown], [label for _, label, _ in shown],
                          [text for _, _, text in shown])
            print(f"Preview: {args.preview}", file=sys.stderr)
    except OSError as e:
        sys.exit(f"error: cannot write {target}: {e.strerror or e}; check that its folder exists and is writable")

    failed = sum(text is None for text in predictions)
    if failed:
        sys.exit(f"error: {failed} of {len(rows)} images could not be read (listed above)")


if __name__ == "__main__":
    main()
