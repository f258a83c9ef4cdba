"""Read handwritten words with an exported ONNX model, and score it.

    python inferenceModel.py                            # newest model under Models/, scored on its val.csv
    python inferenceModel.py --model DIR --csv FILE     # any model (.onnx or its folder), any labelled CSV
    python inferenceModel.py --model DIR a.png words/   # unlabelled images: prints path<TAB>text

The .onnx file is all it needs: train.py stores the vocabulary and input size in its metadata.
"""
import argparse
import glob
import json
import os
import sys

import cv2
import numpy as np
import onnxruntime as ort
import pandas as pd
from mltu.inferenceModel import OnnxInferenceModel
from mltu.utils.text_utils import ctc_decoder, edit_distance
from tqdm import tqdm

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class ModelFileError(Exception):
    pass


class ImageToWordModel(OnnxInferenceModel):
    """The ONNX model plus what it needs around it: resizing in, CTC decoding out.

    It does not call mltu's OnnxInferenceModel.__init__, which runs Python's eval() on every
    metadata string of the file (so a crafted model file could run code); the metadata here
    is JSON and read with json.loads. The attributes are the same as mltu's."""

    def __init__(self, model_path):
        if os.path.isdir(model_path):
            model_path = os.path.join(model_path, "model.onnx")
        if not os.path.isfile(model_path):
            raise ModelFileError(f"no model at {model_path}; pass --model with a .onnx file or a folder holding model.onnx")
        self.model_path = model_path
        try:
            self.model = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelFileError(f"{model_path} is not a usable ONNX model ({str(e).splitlines()[0][:200]})") from e

        try:
            self.metadata = {key: json.loads(value) for key, value in self.model.get_modelmeta().custom_metadata_map.items()}
            self.vocab = self.metadata["vocab"]
            self.height, self.width = int(self.metadata["height"]), int(self.metadata["width"])
        except (KeyError, ValueError, TypeError):
            raise ModelFileError(f"{model_path} has no vocabulary/input-size metadata; export it with train.py") from None
        self.input_shapes = [meta.shape for meta in self.model.get_inputs()]
        self.input_names = [meta.name for meta in self.model.get_inputs()]
        self.output_names = [meta.name for meta in self.model.get_outputs()]
        if len(self.input_shapes) != 1 or list(self.input_shapes[0][1:]) != [self.height, self.width, 3]:
            raise ModelFileError(f"{model_path} takes input {self.input_shapes}, not [batch, {self.height}, {self.width}, 3] images")

    def predict_batch(self, images):
        """BGR uint8 images of any size -> predicted strings, in one model call."""
        batch = np.stack([cv2.resize(image, (self.width, self.height)) for image in images]).astype(np.float32)
        probabilities = self.model.run(self.output_names, {self.input_names[0]: batch})[0]
        # Greedy CTC decoding: best character per time step, merge repeats, drop blanks.
        return ctc_decoder(probabilities, self.vocab)

    def predict(self, image):
        return self.predict_batch([image])[0]


def read_image(path):
    """A BGR uint8 image, whatever the file holds (grayscale, RGBA, 16-bit), or None if unreadable."""
    return cv2.imread(path, cv2.IMREAD_COLOR)


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


def predict_files(model, paths, batch_size, progress=False):
    """Predictions for image files, None for files that cannot be read (each reported once)."""
    predictions = []
    for start in tqdm(range(0, len(paths), batch_size), disable=not progress, unit="batch"):
        chunk = paths[start:start + batch_size]
        images = [read_image(path) for path in chunk]
        for path, image in zip(chunk, images):
            if image is None:
                print(f"skipped {path}: missing or not a readable image", file=sys.stderr)
        readable = [image for image in images if image is not None]
        texts = iter(model.predict_batch(readable) if readable else [])
        predictions += [next(texts) if image is not None else None for image in images]
    return predictions


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


def write_predictions(rows, predictions, per_word_cer, output_path):
    frame = pd.DataFrame({"image_path": [path for path, _ in rows], "label": [label for _, label in rows],
                          "prediction": predictions, "cer": per_word_cer})
    frame.to_csv(output_path + ".tmp", index=False)
    os.replace(output_path + ".tmp", output_path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*", help="image files or folders to read (no labels: prints path<TAB>text)")
    parser.add_argument("--model", help="a .onnx file or a model folder (default: the newest model.onnx under Models/)")
    parser.add_argument("--csv", help="labelled images to score, columns image_path,label (default: the model folder's val.csv)")
    parser.add_argument("--output", help="write image_path,label,prediction,cer for every scored row to this CSV")
    parser.add_argument("--batch-size", type=int, default=64, help="images per model call (default %(default)s)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")

    try:
        model = ImageToWordModel(args.model or newest_model_dir())
        if args.images:
            paths = list_images(args.images)
            for path, text in zip(paths, predict_files(model, paths, args.batch_size)):
                if text is not None:
                    print(f"{path}\t{text}")
            return
        csv_path = args.csv or os.path.join(os.path.dirname(model.model_path), "val.csv")
        rows = read_labelled_csv(csv_path)
    except ModelFileError as e:
        sys.exit(f"error: {e}")

    print(f"Model {model.model_path}, {len(rows)} labelled images from {csv_path}")
    predictions = predict_files(model, [path for path, _ in rows], args.batch_size, progress=True)
    summary, per_word_cer = score(rows, predictions)
    if args.output:
        write_predictions(rows, predictions, per_word_cer, args.output)
    print(f"Average CER: {summary['average_cer']:.4f}")
    print(f"Corpus CER: {summary['corpus_cer']:.4f}")
    print(f"Word accuracy: {summary['word_accuracy']:.4f} ({summary['words']} words)")
    if summary["words"] < len(rows):
        sys.exit(f"error: {len(rows) - summary['words']} of {len(rows)} images could not be read (listed above)")


if __name__ == "__main__":
    main()
