"""The exported ONNX model and what it needs around it: the input preparation training used,
and CTC decoding of its output into texts with confidences.

An image's way to a word: htr.images.read_image -> ImageToWordModel.resize (htr.preprocess) -> .probabilities
(the network) -> .decode (htr.decoding), which also gives each text a confidence: the model's
probability of that text. predict_files runs it over many files in batches."""
import glob
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort
from mltu.inferenceModel import OnnxInferenceModel
from tqdm import tqdm

from htr import ASSETS_DIR
from htr.decoding import beam_search, confidences, greedy_decode, lexicon_decode, read_lexicon
from htr.images import UnreadableImage, read_image
from htr.pages.reading import read_page
from htr.alignment import lexicon_per_word, word_boxes, word_confidences, word_spans
from htr.preprocess import ink_box, ink_mask, prepare, scaled_width, stack_padded

# A line model trained on Testaments de Poilus (CC-BY 4.0), shipped to read with before training one
# and to fine-tune from (train.py --init-from); its README.md has its training command and figures.
STARTING_MODEL_DIR = os.path.join(ASSETS_DIR, "starting_model")
# predict_files works on this many batches at once, one per core this process may use.
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class ModelFileError(Exception):
    pass


def session_options():
    """One onnxruntime thread per model call: predict_files runs one batch per core at once instead,
    as one many-threaded call at a time makes every layer wait for its slowest thread, and for any
    image reading that takes a core. (With no thread pool, no idle threads spin-wait on a shared machine.)"""
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
        self.read_metadata()
        self.input_shapes = [meta.shape for meta in self.model.get_inputs()]
        self.input_names = [meta.name for meta in self.model.get_inputs()]
        self.output_names = [meta.name for meta in self.model.get_outputs()]
        if len(self.input_shapes) != 1 or list(self.input_shapes[0][1:]) != [self.height, self.input_width, 3]:
            raise ModelFileError(f"{model_path} takes input {self.input_shapes}, not [batch, {self.height}, "
                                 f"{self.width or 'any width'}, 3] images")
        self.decoder, self.beam_width = decoder, beam_width
        self.lexicon = self.read_lexicon(lexicon_path) if lexicon_path else None

    def read_metadata(self):
        """The vocabulary, input size and preparation train.py stored in the model file, as JSON."""
        try:
            self.metadata = {key: json.loads(value) for key, value in self.model.get_modelmeta().custom_metadata_map.items()}
            self.vocab = self.metadata["vocab"]
            self.height = int(self.metadata["height"])
            self.width = None if self.metadata["width"] is None else int(self.metadata["width"])  # None: a line model's
            self.keep_aspect_ratio = bool(self.metadata.get("keep_aspect_ratio", False))
            # How train.py cut the words: "columns" or "band" (models that wrote true: columns; before that, none).
            self.crop = {True: "columns", False: None}.get(self.metadata.get("crop_to_ink", False),
                                                          self.metadata.get("crop_to_ink"))
            if self.crop not in (None, "columns", "band", "none"):
                raise ValueError
        except (KeyError, ValueError, TypeError):
            raise ModelFileError(f"{self.model_path} has no vocabulary/input-size metadata; export it with train.py") from None

    def read_lexicon(self, lexicon_path):
        """The lexicon's words the model can spell (htr.decoding.read_lexicon); says how many it left out."""
        try:
            lexicon, unspellable = read_lexicon(lexicon_path, self.vocab)
        except (OSError, UnicodeDecodeError) as e:
            raise ModelFileError(f"cannot read the lexicon {lexicon_path}: {e}") from e
        if not lexicon:
            raise ModelFileError(f"{lexicon_path} has no word the model can spell; pass a UTF-8 file with one word per line")
        if unspellable:
            print(f"lexicon {lexicon_path}: left out {unspellable} words with characters the model cannot write",
                  file=sys.stderr)
        return lexicon

    @property
    def input_width(self):
        """The width the ONNX input declares: the model's, or a named free dimension for a line model."""
        return self.width if self.width is not None else self.input_shapes[0][2]

    def resize(self, image):
        """Any BGR image -> the model's input, prepared as training prepared it (htr.preprocess.prepare)."""
        return prepare(image, self.height, self.width, self.crop, self.keep_aspect_ratio)

    def probabilities(self, images):
        """Resized images (batch, height, width, 3) -> (batch, time steps, len(vocab) + 1)."""
        return self.model.run(self.output_names, {self.input_names[0]: np.asarray(images, dtype=np.float32)})[0]

    def decode(self, probabilities):
        """Per-time-step probabilities -> (texts, confidences), with the decoder and lexicon chosen
        in __init__; each confidence in [0, 1] is the model's probability of its text (htr.decoding.confidences)."""
        if self.decoder == "greedy":
            texts = greedy_decode(probabilities, self.vocab)
        else:
            texts = [beam_search(p, self.vocab, self.beam_width)[0][0] for p in probabilities]
        if self.lexicon:
            texts = [self.apply_lexicon(p, text) for p, text in zip(probabilities, texts)]
        return texts, confidences(probabilities, texts, self.vocab)

    def apply_lexicon(self, probabilities, text):
        """A word model's reading is one word; a line model's, word by word within the line (each
        word's time steps from the alignment, htr.alignment)."""
        if self.width is not None:
            return lexicon_decode(probabilities, text, self.lexicon, self.vocab)
        words, spans = word_spans(probabilities, text, self.vocab)
        return lexicon_per_word(probabilities, spans, words, self.lexicon, self.vocab) if words else text

    def predict_batch(self, images):
        """BGR uint8 images of any size -> (predicted strings, their confidences), in one model call."""
        return self.decode(self.probabilities(stack_padded([self.resize(image) for image in images])))

    def predict(self, image):
        """One BGR uint8 image -> (text, confidence)."""
        texts, text_confidences = self.predict_batch([image])
        return texts[0], text_confidences[0]

    def read_line(self, image, darkness=None):
        """A BGR uint8 line image -> {"text", "confidence", "words": [{"box": [x, y, w, h], "text",
        "confidence"}, ...]}: each word's box is where the CTC alignment of the reading puts its
        characters (htr.alignment), mapped back to pixels of the image and trimmed to the ink, and its
        confidence the model's probability of that word over those time steps. `darkness`: the image's
        htr.preprocess.ink_darkness, when the caller has it (read_page needs it too). The ink is found
        once, for the cut and the boxes alike; the model is fed exactly what self.resize gives."""
        ink = ink_mask(image, darkness)
        whole = (0, image.shape[0], 0, image.shape[1])
        cut = ink_box(image, self.crop == "band", ink) if self.crop in ("columns", "band") else whole
        top, bottom, left, right = cut
        prepared = prepare(image[top:bottom, left:right], self.height, self.width, None, self.keep_aspect_ratio)
        return self.read_aligned(cut, ink, prepared, self.probabilities(stack_padded([prepared]))[0])

    def read_lines(self, images, darknesses=None):
        """read_line for each image (and its darkness, when given), one model call each, one per core
        at a time: a batch padded to its widest line changes how the BiLSTM reads the others (it reads
        the padding too), and on a CPU a batch of lines is no faster than its lines one by one."""
        with ThreadPoolExecutor(max_workers=CORES) as pool:
            return list(pool.map(self.read_line, images, darknesses or [None] * len(images)))

    def read_aligned(self, cut, ink, prepared, probabilities):
        """read_line's result from the model's output for the prepared image, cut at (top, bottom, left,
        right) from the line image whose ink_mask is `ink`."""
        top, bottom, left, right = cut
        texts, text_confidences = self.decode(probabilities[np.newaxis])
        words, spans = word_spans(probabilities, texts[0], self.vocab)
        # One time step is input width / steps prepared pixels, and a prepared pixel this many of the image's.
        scale = (right - left) / (self.width or scaled_width(right - left, bottom - top, self.height))
        boxes = word_boxes(spans, left, scale * prepared.shape[1] / len(probabilities), ink)
        word_confidence = word_confidences(probabilities, spans, words, self.vocab)
        return {"text": texts[0], "confidence": round(float(text_confidences[0]), 4),
                "words": [{"box": box, "text": word, "confidence": round(float(confidence), 4)}
                          for box, word, confidence in zip(boxes, words, word_confidence)]}

    def read_page(self, image):
        """A word, a line or a page -> its words, lines and text (htr.pages.reading.read_page)."""
        return read_page(self, image)


def predict_files(model, paths, batch_size, progress=False):
    """(texts, confidences) for image files: None and None for a file that cannot be read, reported
    in one line on stderr.

    Each core reads, resizes, runs and decodes a batch of its own, so both reading (OpenCV releases
    Python's GIL while it decodes and resizes) and the network keep every core busy."""
    def read_and_predict(batch):
        images, readable = [], []
        for row, path in enumerate(batch):
            try:
                images.append(model.resize(read_image(path)))
                readable.append(row)
            except UnreadableImage as e:
                tqdm.write(f"skipped {path}: {e}", file=sys.stderr)  # above the progress bar, not inside it
        texts, text_confidences = [None] * len(batch), [None] * len(batch)
        if readable:
            for row, text, confidence in zip(readable, *model.decode(model.probabilities(stack_padded(images)))):
                texts[row], text_confidences[row] = text, confidence
        return texts, text_confidences

    if model.width is None:
        batch_size = 1  # a line model reads each line alone, as read_lines does (it says why)
    batches = [paths[start:start + batch_size] for start in range(0, len(paths), batch_size)]
    predictions, prediction_confidences = [], []
    with ThreadPoolExecutor(max_workers=CORES) as pool:
        for texts, text_confidences in tqdm(pool.map(read_and_predict, batches), total=len(batches), disable=not progress,
                                            unit="batch"):
            predictions += texts
            prediction_confidences += text_confidences
    return predictions, prediction_confidences


def newest_model_dir(root="Models"):
    """The folder of the newest model.onnx under root; with none there, the starting model shipped
    in the repository (STARTING_MODEL_DIR), said on stderr, so there is something to read with before
    any training."""
    models = glob.glob(os.path.join(root, "**", "model.onnx"), recursive=True)
    if models:
        return os.path.dirname(max(models, key=os.path.getmtime))
    if not os.path.isfile(os.path.join(STARTING_MODEL_DIR, "model.onnx")):
        raise ModelFileError(f"no model.onnx under {root}/; train one with python train.py, or pass --model")
    print(f"No model under {root}/: using the starting model {os.path.relpath(STARTING_MODEL_DIR)}, a line model for "
          "handwriting by many writers (its README.md says how well it reads, LICENSE.md its licence); train your "
          "own with python train.py, or pass --model", file=sys.stderr)
    return STARTING_MODEL_DIR
