"""Speed benchmarks, one subcommand each.

    python -m benchmarks.speed inference --model DIR [--csv FILE] [--images N] [--quantize]
    python -m benchmarks.speed train [--data-dir DIR] [--steps N]
    python -m benchmarks.speed pipeline --data-dir DIR [--workers N]

inference: images per second for the original tutorial's loop (read, resize, run and decode one image at a
time), for inferenceModel.py's batched path (files to text, reading overlapped with the model),
and for the model alone on in-memory batches: the most the batched path could reach. Same model,
same images, one run. With an int8 model (model.int8.onnx beside the model, or --quantize to make
it) also its speed and CER next to the float model's.

train: training samples per second of the tutorial preset, of the project's defaults, and of the
defaults with the tutorial's model (the same architecture as the tutorial preset, so the speed-up of the
training recipe alone), on the same images, in one process: through the whole input pipeline
(reading, augmentation, resizing in the DataProvider, as train.py trains), and for the model alone
on in-memory batches (the limit). Steady state: the first WARMUP_STEPS steps (graph tracing) are
not timed.

pipeline: samples/s of the input pipeline alone (train.py's data_provider with the defaults'
augmentation, batches taken as fit() takes them) with one worker process and with N, and of the
model alone training on in-memory batches: the pipeline keeps the model fed while it is faster.

Each figure is the best of REPEATS rounds, as timeit does: other programs on the machine only ever
make a run slower. The images are read once before timing, so all paths read from a warm file cache.
"""
import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import onnxruntime as ort
from mltu.utils.text_utils import ctc_decoder

from htr.data.labels_csv import read_labelled_csv
from htr.images import UnreadableImage, read_image
from htr.quantize import quantize_model
from htr.recognizer import CORES, ImageToWordModel, ModelFileError, predict_files
from htr.scoring import score

REPEATS = 3
BATCH_SIZE = 64  # inferenceModel.py's default --batch-size
WARMUP_STEPS = 3


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


def tutorial_loop(model, paths):
    """The original tutorial's inference: mltu's session settings, one image per model call."""
    session = ort.InferenceSession(model.model_path, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run():
        for path in paths:
            image = cv2.resize(cv2.imread(path), (model.width, model.height))
            probabilities = session.run(None, {input_name: np.expand_dims(image, 0).astype(np.float32)})[0]
            ctc_decoder(probabilities, model.vocab)
    return run


def model_alone(model, images):
    """The network on in-memory float32 batches, one batch per core at once, as predict_files runs it."""
    batches = [images[start:start + BATCH_SIZE].astype(np.float32) for start in range(0, len(images), BATCH_SIZE)]

    def run():
        with ThreadPoolExecutor(max_workers=CORES) as pool:
            list(pool.map(model.probabilities, batches))
    return run


def model_inputs(model, paths):
    """The images resized for the model, in one array; reading every image once also warms the file cache."""
    resized = []
    for path in paths:
        try:
            resized.append(model.resize(read_image(path)))
        except UnreadableImage as e:
            raise ModelFileError(f"cannot read {path} ({e}); benchmark on readable images") from None
    return np.stack(resized)


def bench_inference(args):
    model = ImageToWordModel(args.model)
    csv_path = args.csv or os.path.join(os.path.dirname(model.model_path), "val.csv")
    rows = read_labelled_csv(csv_path)[:args.images]
    paths = [path for path, _ in rows]
    resized = model_inputs(model, paths)
    int8_path = quantize_model(model.model_path) if args.quantize else model.model_path[:-len(".onnx")] + ".int8.onnx"
    int8 = ImageToWordModel(int8_path) if os.path.isfile(int8_path) else None

    runs = {"tutorial": tutorial_loop(model, paths), "batched": lambda: predict_files(model, paths, BATCH_SIZE),
            "alone": model_alone(model, resized)}
    if int8:
        runs.update({"int8 batched": lambda: predict_files(int8, paths, BATCH_SIZE), "int8 alone": model_alone(int8, resized)})
    print(f"Model {model.model_path}: {len(paths)} images from {csv_path}, {CORES} CPU cores, "
          f"best of {REPEATS} rounds, batches of {BATCH_SIZE}")
    rate = best_rates(runs, len(paths))
    print(f"  tutorial loop, one image per call {rate['tutorial']:8.0f} images/s")
    print(f"  batched, files to text            {rate['batched']:8.0f} images/s  {rate['batched'] / rate['tutorial']:.2f}x the tutorial "
          f"loop, {rate['batched'] / rate['alone']:.0%} of the model alone")
    print(f"  model alone, in-memory batches    {rate['alone']:8.0f} images/s")
    if not int8:
        return
    print(f"  int8 batched, files to text       {rate['int8 batched']:8.0f} images/s  "
          f"{rate['int8 batched'] / rate['batched']:.2f}x float")
    print(f"  int8 model alone                  {rate['int8 alone']:8.0f} images/s  {rate['int8 alone'] / rate['alone']:.2f}x float")
    float_cer = score(rows, predict_files(model, paths, BATCH_SIZE)[0])[0]["average_cer"]
    int8_cer = score(rows, predict_files(int8, paths, BATCH_SIZE)[0])[0]["average_cer"]
    print(f"  average CER (greedy): float {float_cer:.4f}, int8 {int8_cer:.4f} ({100 * (int8_cer - float_cer):+.2f} points)")


def training_rate(model, data, steps, batch_size):
    """Steady-state samples/s of model.fit() on `data` (a PyDataset, or (images, labels) arrays):
    the time from the end of step WARMUP_STEPS to the end of step WARMUP_STEPS + steps, over as
    many epochs as that takes."""
    import keras  # TensorFlow is imported only by the subcommands that train

    ends = []

    def step_end(batch, logs):
        ends.append(time.perf_counter())
        model.stop_training = len(ends) == WARMUP_STEPS + steps
    x, y = data if isinstance(data, tuple) else (data, None)
    model.fit(x, y, batch_size=batch_size if y is not None else None, epochs=WARMUP_STEPS + steps, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=step_end)])
    return steps * batch_size / (ends[-1] - ends[WARMUP_STEPS - 1])


def fitted_to(configs, rows):
    """configs with the vocabulary and text length of `rows`, and the mixed precision the machine can run."""
    from htr.training.distribute import set_mixed_precision

    configs.vocab = "".join(sorted(set("".join(label for _, label in rows))))
    configs.max_text_length = max(len(label) for _, label in rows)
    configs.mixed_precision = set_mixed_precision(configs.mixed_precision)
    return configs


def in_memory_batches(provider, steps):
    """The first WARMUP_STEPS + steps batches of a pipeline as (images, labels) arrays; labels are a
    dict {"output", "shortcut"} when the model has a CTC shortcut."""
    import keras

    batches = [provider[i] for i in range(min(len(provider), WARMUP_STEPS + steps))]
    return keras.tree.map_structure(lambda *parts: np.concatenate(parts), *batches)


def bench_train(args):
    import keras

    from configs import ModelConfigs
    from htr.data.demo import generate_demo_words
    from htr.data.iam import DatasetError, parse_words_txt
    from htr.data.pipeline import data_provider, training_augmentors
    from model import compile_model

    try:
        words = parse_words_txt(args.data_dir or generate_demo_words())
    except DatasetError as e:
        sys.exit(f"error: {e}")
    rows = [(path, label) for _, path, label in words]
    print(f"{len(rows)} images from {args.data_dir or 'the demo set'}, {os.cpu_count()} CPU cores; "
          f"{args.steps} timed steps after {WARMUP_STEPS} untimed ones")
    setups = {"tutorial": ModelConfigs("tutorial"), "default": ModelConfigs("default"), "tutorial model": ModelConfigs("default")}
    setups["tutorial model"].architecture = "tutorial"
    setups["tutorial model"].ctc_shortcut = 0.0  # the tutorial's model exactly: no extra training-only output
    rates = {}
    for name, configs in setups.items():
        configs = fitted_to(configs, rows)
        keras.utils.set_random_seed(0)
        pipeline = data_provider(rows, configs, configs.batch_size, training_augmentors(configs.augmentation), shuffle=True)
        pipeline_rate = training_rate(compile_model(configs), pipeline, args.steps, configs.batch_size)
        in_memory = in_memory_batches(pipeline, args.steps)
        alone_rate = training_rate(compile_model(configs), in_memory, args.steps, configs.batch_size)
        rates[name] = pipeline_rate
        print(f"  {name:10} ({configs.architecture} model, batch {configs.batch_size}, {configs.augmentation} augmentation, "
              f"{configs.mixed_precision} precision): pipeline {pipeline_rate:6.0f} samples/s, "
              f"model alone {alone_rate:6.0f} samples/s")
    print(f"  defaults / tutorial: {rates['default'] / rates['tutorial']:.2f}x; the defaults with the tutorial model / tutorial "
          f"(same architecture): {rates['tutorial model'] / rates['tutorial']:.2f}x")


def pipeline_rate(provider, batches):
    """Samples/s of the input pipeline alone: `batches` batches taken as fit() takes them (Keras's
    PyDataset adapter, its worker processes started again each epoch), over as many epochs as that
    needs; timed from the end of the first batch (the workers' start), best of REPEATS rounds."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter  # what fit() iterates

    best = float("inf")
    for _ in range(REPEATS):
        adapter, samples, start = PyDatasetAdapter(provider), 0, None
        while start is None or samples < batches * provider._batch_size:
            adapter.on_epoch_begin()
            for images, _ in adapter.get_numpy_iterator():
                if start is None:
                    start = time.perf_counter()
                else:
                    samples += len(images)
                if samples >= batches * provider._batch_size:
                    break
            adapter.on_epoch_end()
        best = min(best, (time.perf_counter() - start) / samples)
    return 1 / best


def bench_pipeline(args):
    import keras

    from configs import ModelConfigs
    from htr.data.iam import DatasetError, parse_words_txt
    from htr.data.pipeline import data_provider, training_augmentors, usable_cores
    from model import compile_model

    try:
        rows = [(path, label) for _, path, label in parse_words_txt(args.data_dir)]
        configs = fitted_to(ModelConfigs(), rows)
        provider = data_provider(rows, configs, configs.batch_size, training_augmentors(configs.augmentation),
                                 shuffle=True)
    except DatasetError as e:
        sys.exit(f"error: {e}")
    print(f"{len(rows)} images from {args.data_dir} decoded into memory ({provider.cache.nbytes / 2**20:.0f} MB) "
          f"in {provider.cache.seconds:.1f} s; {usable_cores()} CPU cores; default preset ({configs.augmentation} "
          f"augmentation, batch {configs.batch_size}); best of {REPEATS} rounds")
    keras.utils.set_random_seed(0)
    in_memory = in_memory_batches(provider, args.steps)
    alone_rate = training_rate(compile_model(configs), in_memory, args.steps, configs.batch_size)
    print(f"  model alone, training on in-memory batches ({configs.mixed_precision} precision): "
          f"{alone_rate:.0f} samples/s")
    rates = {}
    for workers in sorted({1, args.workers}):
        provider.workers = workers
        rates[workers] = pipeline_rate(provider, args.batches)
    if args.workers > 1:
        print(f"  pipeline alone, 1 worker: {rates[1]:.0f} samples/s")
    print(f"  pipeline alone, {args.workers} worker{'s' if args.workers > 1 else ''}"
          f"{f' ({rates[args.workers] / rates[1]:.2f}x one worker)' if args.workers > 1 else ''}: "
          f"{rates[args.workers]:.0f} samples/s")


def main(argv=None):
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subcommands = parser.add_subparsers(dest="subcommand", required=True)
    inference = subcommands.add_parser("inference", help="images per second: tutorial loop, batched path, model alone")
    inference.add_argument("--model", required=True, help="a .onnx file or a model folder")
    inference.add_argument("--csv", help="labelled images, columns image_path,label (default: the model folder's val.csv)")
    inference.add_argument("--images", type=int, default=1000, help="how many of the CSV's images (default %(default)s)")
    inference.add_argument("--quantize", action="store_true", help="make model.int8.onnx first (inferenceModel.py --quantize)")
    inference.set_defaults(run=bench_inference)
    train = subcommands.add_parser("train", help="training samples/s: tutorial preset vs defaults, pipeline and model alone")
    train.add_argument("--data-dir", help="a folder in the IAM words layout (default: the demo set)")
    train.add_argument("--steps", type=int, default=40, help="timed training steps per measurement (default %(default)s)")
    train.set_defaults(run=bench_train)
    pipeline = subcommands.add_parser("pipeline", help="samples/s of the input pipeline alone, 1 and N workers, "
                                                       "and of the model alone")
    pipeline.add_argument("--data-dir", required=True, help="a folder in the IAM words layout")
    pipeline.add_argument("--workers", type=int, default=2, help="worker processes (default %(default)s)")
    pipeline.add_argument("--batches", type=int, default=300, help="timed batches per round (default %(default)s)")
    pipeline.add_argument("--steps", type=int, default=40, help="timed training steps of the model alone (default %(default)s)")
    pipeline.set_defaults(run=bench_pipeline)
    args = parser.parse_args(argv)
    if min(getattr(args, name, 1) for name in ("steps", "workers", "batches")) < 1:
        parser.error("--steps, --workers and --batches must be above 0")
    try:
        args.run(args)
    except ModelFileError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
