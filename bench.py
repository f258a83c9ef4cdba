"""Benchmarks, one subcommand each.

    python bench.py inference --model DIR [--csv FILE] [--images N] [--quantize]

inference: images per second for the seed's loop (read, resize, run and decode one image at a
time), for inferenceModel.py's batched path (files to text, reading overlapped with the model),
and for the model alone on in-memory batches: the most the batched path could reach. Same model,
same images, one run. With an int8 model (model.int8.onnx beside the model, or --quantize to make
it) also its speed and CER next to the float model's.

Each figure is the best of REPEATS rounds, as timeit does: other programs on the machine only ever
make a run slower. The images are read once before timing, so all paths read from a warm file cache.
"""
import argparse
import os
import sys
import time

import cv2
import numpy as np
import onnxruntime as ort
from mltu.utils.text_utils import ctc_decoder

from inferenceModel import (ImageToWordModel, ModelFileError, UnreadableImage, predict_files, quantize_model, read_image,
                            read_labelled_csv, score)

REPEATS = 3
BATCH_SIZE = 64


def best_rates(runs, count):
    """Images per second of each run() (each handles `count` images): the fastest of REPEATS rounds,
    every round running them all in turn, so that they all meet the same load from other programs."""
    fastest = {name: float("inf") for name in runs}
    for _ in range(REPEATS):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            fastest[name] = min(fastest[name], time.perf_counter() - start)
    return {name: count / seconds for name, seconds in fastest.items()}


def seed_loop(model, paths):
    """The seed tutorial's inference: mltu's session settings, one image per model call."""
    session = ort.InferenceSession(model.model_path, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run():
        for path in paths:
            image = cv2.resize(cv2.imread(path), (model.width, model.height))
            probabilities = session.run(None, {input_name: np.expand_dims(image, 0).astype(np.float32)})[0]
            ctc_decoder(probabilities, model.vocab)
    return run


def model_alone(model, images):
    def run():
        for start in range(0, len(images), BATCH_SIZE):
            model.probabilities(images[start:start + BATCH_SIZE])
    return run


def bench_inference(args):
    model = ImageToWordModel(args.model)
    csv_path = args.csv or os.path.join(os.path.dirname(model.model_path), "val.csv")
    rows = read_labelled_csv(csv_path)[:args.images]
    paths = [path for path, _ in rows]
    resized = []  # reading every image once also warms the file cache
    for path in paths:
        try:
            resized.append(model.resize(read_image(path)))
        except UnreadableImage as e:
            raise ModelFileError(f"cannot read {path} ({e}); benchmark on readable images") from None
    resized = np.stack(resized)
    int8_path = quantize_model(model.model_path) if args.quantize else model.model_path[:-len(".onnx")] + ".int8.onnx"
    int8 = ImageToWordModel(int8_path) if os.path.isfile(int8_path) else None

    runs = {"seed": seed_loop(model, paths), "batched": lambda: predict_files(model, paths, BATCH_SIZE),
            "alone": model_alone(model, resized)}
    if int8:
        runs.update({"int8 batched": lambda: predict_files(int8, paths, BATCH_SIZE), "int8 alone": model_alone(int8, resized)})
    print(f"Model {model.model_path}: {len(paths)} images from {csv_path}, {os.cpu_count()} CPU cores, "
          f"best of {REPEATS} rounds, batches of {BATCH_SIZE}")
    rate = best_rates(runs, len(paths))
    print(f"  seed loop, one image per call     {rate['seed']:8.0f} images/s")
    print(f"  batched, files to text            {rate['batched']:8.0f} images/s  {rate['batched'] / rate['seed']:.2f}x the seed "
          f"loop, {rate['batched'] / rate['alone']:.0%} of the model alone")
    print(f"  model alone, in-memory batches    {rate['alone']:8.0f} images/s")
    if not int8:
        return
    print(f"  int8 batched, files to text       {rate['int8 batched']:8.0f} images/s  "
          f"{rate['int8 batched'] / rate['batched']:.2f}x float")
    print(f"  int8 model alone                  {rate['int8 alone']:8.0f} images/s  {rate['int8 alone'] / rate['alone']:.2f}x float")
    float_cer = score(rows, predict_files(model, paths, BATCH_SIZE))[0]["average_cer"]
    int8_cer = score(rows, predict_files(int8, paths, BATCH_SIZE))[0]["average_cer"]
    print(f"  average CER (greedy): float {float_cer:.4f}, int8 {int8_cer:.4f} ({100 * (int8_cer - float_cer):+.2f} points)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subcommands = parser.add_subparsers(dest="subcommand", required=True)
    inference = subcommands.add_parser("inference", help="images per second: seed loop, batched path, model alone")
    inference.add_argument("--model", required=True, help="a .onnx file or a model folder")
    inference.add_argument("--csv", help="labelled images, columns image_path,label (default: the model folder's val.csv)")
    inference.add_argument("--images", type=int, default=1000, help="how many of the CSV's images (default %(default)s)")
    inference.add_argument("--quantize", action="store_true", help="make model.int8.onnx first (inferenceModel.py --quantize)")
    inference.set_defaults(run=bench_inference)
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except ModelFileError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
