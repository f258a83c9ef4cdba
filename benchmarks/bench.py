"""Benchmarks, one subcommand each.

    python bench.py inference --model DIR [--csv FILE] [--images N] [--quantize]
    python bench.py train [--data-dir DIR] [--steps N]
    python bench.py budget --minutes M --data-dir DIR [--variant "NAME: FLAGS" ...]
    python bench.py photos --model DIR [--csv FILE] [--images N] [--seed S]
    python bench.py pages --model DIR --data-dir DIR [--pages N] [--lines N] [--seed S] [--line-pitch UNITS]
    python bench.py pipeline --data-dir DIR [--workers N]

train: training samples per second of the tutorial preset, of the project's defaults, and of the
defaults with the tutorial's model (the same architecture as the tutorial preset, so the speed-up of the
training recipe alone), on the same images, in one process: through the whole input pipeline
(reading, augmentation, resizing in the DataProvider, as train.py trains), and for the model alone
on in-memory batches (the limit). Steady state: the first WARMUP_STEPS steps (graph tracing) are
not timed.

pipeline: samples/s of the input pipeline alone (train.py's data_provider with the defaults'
augmentation, batches taken as fit() takes them) with one worker process and with N, and of the
model alone training on in-memory batches: the pipeline keeps the model fed while it is faster.

budget: what a user gets from M minutes of training: train.py --minutes M with the tutorial preset,
then the defaults (then each --variant), on DIR's splits/; each ONNX export is scored on the
validation split; one table: CER, average CER, word accuracy, epochs, samples/s.

inference: images per second for the original tutorial's loop (read, resize, run and decode one image at a
time), for inferenceModel.py's batched path (files to text, reading overlapped with the model),
and for the model alone on in-memory batches: the most the batched path could reach. Same model,
same images, one run. With an int8 model (model.int8.onnx beside the model, or --quantize to make
it) also its speed and CER next to the float model's.

photos: how much worse a model reads words photographed with a phone than scanned: its CER on a
labelled CSV's images and on photo-like copies of them (augmentors.photo_like: tinted paper,
uneven light and shadow, grey/brown/blue ink, blur, noise, a loose crop, JPEG), greedy decoding.

pages: how well read_page reads whole pages. compose_page lays real word images out as a page
(each source line's words left to right, lines close enough that ascenders and descenders touch,
toned paper, uneven light, noise, a rotation within +-2 degrees, every other page a JPEG) and
keeps every word's true box and text. Word detection: precision, recall and F1 of the found boxes
against the true ones at IoU >= 0.5. Page text: CER of the page's text (whitespace normalised)
against the truth, beside the same model's CER on the same words cropped by hand (the dataset's
word images, joined the same way). Then each of those word images on its own through read_page, as a
user may upload one word: how often it finds one word, and its CER beside predict's. Last line: pages
per second of read_page on the pages (one pass; composing and scoring are not timed).

Each figure is the best of REPEATS rounds, as timeit does: other programs on the machine only ever
make a run slower. The images are read once before timing, so all paths read from a warm file cache.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import onnxruntime as ort
from mltu.utils.text_utils import ctc_decoder, edit_distance

from htr.data.augment import photo_like
from inferenceModel import (CORES, ImageToWordModel, ModelFileError, UnreadableImage, confidence_auroc, predict_files,
                            quantize_model, read_image, read_labelled_csv, score)

REPEATS = 3
BATCH_SIZE = 64
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


def bench_photos(args):
    """The same model on a labelled CSV's scans and on photo-like copies of them (augmentors.photo_like;
    image i's copy is drawn from the seed [--seed, i], so every run and every model sees the same photos)."""
    model = ImageToWordModel(args.model)
    csv_path = args.csv or os.path.join(os.path.dirname(model.model_path), "val.csv")
    rows = read_labelled_csv(csv_path)[:args.images]
    scans = []
    for path, _ in rows:
        try:
            scans.append(read_image(path))
        except UnreadableImage as e:
            raise ModelFileError(f"cannot read {path} ({e}); benchmark on readable images") from None
    photos = [photo_like(image, np.random.default_rng([args.seed, index])) for index, image in enumerate(scans)]
    print(f"Model {model.model_path}: {len(rows)} labelled images from {csv_path}, and photo-like copies (seed {args.seed})")
    cer = {}
    for name, images in [("scans", scans), ("photos", photos)]:
        texts, confidences = [], []
        for start in range(0, len(images), BATCH_SIZE):
            batch_texts, batch_confidences = model.predict_batch(images[start:start + BATCH_SIZE])
            texts, confidences = texts + batch_texts, confidences + batch_confidences
        summary = score(rows, texts)[0]
        cer[name] = summary["corpus_cer"]
        print(f"  {name:7} CER {summary['corpus_cer']:7.2%}   average CER {summary['average_cer']:7.2%}   "
              f"word accuracy {summary['word_accuracy']:6.1%}   confidence AUROC {confidence_auroc(rows, texts, confidences):.3f}")
    print(f"  photos read {100 * (cer['photos'] - cer['scans']):+.2f} points of CER against the scans")


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


def bench_train(args):
    from train import compile_model, data_provider, training_augmentors  # first: it sets TensorFlow's CPU options

    import keras

    from configs import ModelConfigs
    from htr.data.demo import generate_demo_words
    from htr.training.distribute import set_mixed_precision
    from htr.data.iam import DatasetError, parse_words_txt

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
        configs.vocab = "".join(sorted(set("".join(label for _, label in rows))))
        configs.max_text_length = max(len(label) for _, label in rows)
        configs.mixed_precision = set_mixed_precision(configs.mixed_precision)
        keras.utils.set_random_seed(0)
        pipeline = data_provider(rows, configs, configs.batch_size, training_augmentors(configs.augmentation), shuffle=True)
        pipeline_rate = training_rate(compile_model(configs), pipeline, args.steps, configs.batch_size)
        in_memory = [pipeline[i] for i in range(min(len(pipeline), WARMUP_STEPS + args.steps))]
        # labels are a dict {"output", "shortcut"} when the model has a CTC shortcut
        images, labels = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *in_memory)
        alone_rate = training_rate(compile_model(configs), (images, labels), args.steps, configs.batch_size)
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
    from train import compile_model, data_provider, training_augmentors  # first: it sets TensorFlow's CPU options

    import keras

    from configs import ModelConfigs
    from htr.data.pipeline import usable_cores
    from htr.training.distribute import set_mixed_precision
    from htr.data.iam import DatasetError, parse_words_txt

    try:
        words = parse_words_txt(args.data_dir)
        rows = [(path, label) for _, path, label in words]
        configs = ModelConfigs()
        configs.vocab = "".join(sorted(set("".join(label for _, label in rows))))
        configs.max_text_length = max(len(label) for _, label in rows)
        configs.mixed_precision = set_mixed_precision(configs.mixed_precision)
        provider = data_provider(rows, configs, configs.batch_size, training_augmentors(configs.augmentation),
                                 shuffle=True)
    except DatasetError as e:
        sys.exit(f"error: {e}")
    print(f"{len(rows)} images from {args.data_dir} decoded into memory ({provider.cache.nbytes / 2**20:.0f} MB) "
          f"in {provider.cache.seconds:.1f} s; {usable_cores()} CPU cores; default preset ({configs.augmentation} "
          f"augmentation, batch {configs.batch_size}); best of {REPEATS} rounds")
    keras.utils.set_random_seed(0)
    in_memory = [provider[i] for i in range(min(len(provider), WARMUP_STEPS + args.steps))]
    images, labels = keras.tree.map_structure(lambda *parts: np.concatenate(parts), *in_memory)
    alone_rate = training_rate(compile_model(configs), (images, labels), args.steps, configs.batch_size)
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


def bench_budget(args):
    splits = os.path.join(args.data_dir, "splits")
    if not all(os.path.isfile(os.path.join(splits, f"{part}.txt")) for part in ("train", "valid")):
        sys.exit(f"error: {args.data_dir} has no splits/train.txt and splits/valid.txt; budget compares on a fixed split")
    variants = [("tutorial preset", ["--preset", "tutorial"]), ("defaults", [])]
    for variant in args.variant:
        name, colon, flags = variant.partition(":")
        if not (colon and name.strip()):
            sys.exit(f'error: --variant "{variant}": write it as "NAME: TRAIN.PY FLAGS", e.g. "tutorial model: --architecture tutorial"')
        variants.append((name.strip(), flags.split()))
    from train import parse_args  # every variant's flags are checked before hours of training start
    for name, flags in variants:
        try:
            parse_args(["--data-dir", args.data_dir, "--minutes", str(args.minutes), *flags])
        except SystemExit:
            sys.exit(f"error: --variant {name}: train.py refuses these flags (see the line above)")
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="bench_budget_")
    results = []
    for index, (name, flags) in enumerate(variants):
        model_dir = os.path.join(work_dir, f"{index}")
        command = [sys.executable, "train.py", "--data-dir", args.data_dir, "--minutes", str(args.minutes),
                   "--model-dir", model_dir, *flags]
        print(f"[{name}] {' '.join(command[1:])}", flush=True)
        finished = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if finished.returncode:
            last_line = (finished.stderr.strip().splitlines() or [f"exit code {finished.returncode}"])[-1]
            sys.exit(f"error: {name}: train.py failed: {last_line}")
        with open(os.path.join(model_dir, "training.json")) as f:
            training = json.load(f)
        rows = read_labelled_csv(os.path.join(model_dir, "val.csv"))
        model = ImageToWordModel(os.path.join(model_dir, "model.onnx"))
        summary = score(rows, predict_files(model, [path for path, _ in rows], BATCH_SIZE)[0])[0]
        results.append((name, summary, training))
        print(f"  CER {summary['corpus_cer']:.4f}, average CER {summary['average_cer']:.4f}, "
              f"word accuracy {summary['word_accuracy']:.4f}", flush=True)

    print(f"\n{args.minutes:g} minutes of training each on {args.data_dir} ({len(rows)} validation words, "
          f"{os.cpu_count()} CPU cores), greedy decoding of the ONNX export; models in {work_dir}")
    print("| run | CER | average CER | word accuracy | epochs | samples/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, summary, training in results:
        print(f"| {name} | {summary['corpus_cer']:.1%} | {summary['average_cer']:.1%} | {summary['word_accuracy']:.1%} | "
              f"{training['epochs']} | {training['samples'] / training['seconds']:.0f} |")


def dataset_lines(dataset_dir, split=None):
    """A dataset in the IAM words layout as pages of lines of (image path, text), in writing order:
    word id g30-305x-04-07 is page g30-305x, line 04, word 07. split="valid" keeps only the ids in
    splits/valid.txt: words a model trained on the train split never saw."""
    keep = None
    if split:
        with open(os.path.join(dataset_dir, "splits", f"{split}.txt")) as f:
            keep = {line.strip() for line in f if line.strip()}
    pages = defaultdict(lambda: defaultdict(list))
    with open(os.path.join(dataset_dir, "words.txt"), encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\r\n").split(" ")
            if line.startswith("#") or len(fields) < 9 or fields[1] != "ok" or (keep is not None and fields[0] not in keep):
                continue
            form, page, line_number = fields[0].split("-")[:3]
            path = os.path.join(dataset_dir, "words", form, f"{form}-{page}", f"{fields[0]}.png")
            pages[f"{form}-{page}"][line_number].append((fields[0], path, fields[-1]))
    return [[[(path, text) for _, path, text in sorted(words)] for _, words in sorted(lines.items())]
            for _, lines in sorted(pages.items())]


def compose_page(lines, rng, angle=None, line_pitch=None, gaps=(0.3, 0.6), jpeg_quality=None, ruled=False):
    """A photographed-looking page made of word images, and the truth about it.

    lines: [[(BGR word image, text), ...], ...] in reading order. Sizes are in units of the tall words'
    ink height (the 90th percentile of the words' ink heights: ascender to descender). Each word's
    ink (Otsu's threshold) goes left to right with gaps of `gaps` units (natural for gw_words: about
    1-2 x-heights; a script with short ascenders needs more). Its height on the line: where all word
    images are equally high, the dataset cut them to their line's band (gw_words), so the bands'
    centres sit on the line's centre, keeping the writer's own baseline; otherwise the word's middle
    ink row (in its x-height band) does, +-3% of a unit. Lines are line_pitch units apart
    (default 0.8-0.95: close enough that some ascenders and descenders touch). Then toned
    paper, one ink colour, light falling off away from a lamp, noise, a rotation by `angle` degrees
    (default: uniform in +-2) and, with jpeg_quality, a JPEG round trip. ruled: on ruled paper, a
    light blue rule under each line (through its x-height band's bottom, as a writer keeps to it)
    and a red margin rule down the left, just before the lines' first words.
    Returns (BGR uint8 page, [{"box": [x, y, w, h], "text", "line"}, ...]): the true box of each
    word is the bounding box of its own ink on the final page."""
    one_band = len({image.shape[0] for line in lines for image, _ in line}) == 1

    def ink_mask(image):  # the word's ink cropped to it, and its centre row in the word image
        mask = cv2.threshold(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)[1] > 0
        rows, columns = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        if len(rows) == 0:
            return None, 0
        centre = image.shape[0] / 2 if one_band else np.median(np.nonzero(mask)[0])
        return mask[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1], centre - rows[0]
    masks = [[(*ink_mask(image), text) for image, text in line] for line in lines]
    masks = [[word for word in line if word[0] is not None] for line in masks]
    word_height = float(np.percentile([mask.shape[0] for line in masks for mask, _, _ in line], 90))
    pitch = word_height * (line_pitch if line_pitch is not None else rng.uniform(0.8, 0.95))
    angle = rng.uniform(-2, 2) if angle is None else angle
    margin = int(word_height)
    placed, width = [], 0  # (ink mask, left, top, text, line number)
    for number, line in enumerate(masks):
        x, centre = margin, margin + word_height / 2 + number * pitch
        for mask, mask_centre, text in line:
            top = max(0, int(round(centre - mask_centre + (0 if one_band else rng.normal(0, 0.03 * word_height)))))
            placed.append((mask, x, top, text, number))
            x += mask.shape[1] + int(rng.uniform(*gaps) * word_height)
        width = max(width, x)
    height = max(top + mask.shape[0] for mask, _, top, _, _ in placed) + margin
    ink = np.zeros((height, width + margin), np.float32)
    for mask, left, top, _, _ in placed:
        region = ink[top:top + mask.shape[0], left:left + mask.shape[1]]
        np.maximum(region, mask, out=region)

    rules = []  # the blue rules under the lines, the red margin rule
    if ruled:
        rules = np.zeros((2, *ink.shape), np.float32)
        thickness = max(2, round(word_height / 50))
        for number in {line for _, _, _, _, line in placed}:
            rows = np.concatenate([top + np.nonzero(mask)[0] for mask, _, top, _, line in placed if line == number])
            baseline = int(round(np.percentile(rows, 75)))
            cv2.line(rules[0], (0, baseline), (ink.shape[1] - 1, baseline), 1.0, thickness)
        cv2.line(rules[1], (margin - margin // 8, 0), (margin - margin // 8, ink.shape[0] - 1), 1.0, thickness)

    height, width = ink.shape  # rotated about the centre, onto a canvas that keeps every corner
    rotation = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    cos, sin = abs(rotation[0, 0]), abs(rotation[0, 1])
    out_w, out_h = int(np.ceil(width * cos + height * sin)), int(np.ceil(width * sin + height * cos))
    rotation[:, 2] += (out_w - width) / 2, (out_h - height) / 2
    ink, *rules = (cv2.warpAffine(cv2.GaussianBlur(layer, (0, 0), 0.7), rotation, (out_w, out_h), flags=cv2.INTER_LINEAR)
                   for layer in (ink, *rules))
    truth = []
    for mask, left, top, text, number in placed:
        ys, xs = np.nonzero(mask)
        x, y = rotation @ np.stack([xs + left + 0.5, ys + top + 0.5, np.ones(len(xs))])
        x0, y0 = int(np.floor(x.min() - 0.5)), int(np.floor(y.min() - 0.5))
        truth.append({"box": [x0, y0, int(np.ceil(x.max() + 0.5)) - x0, int(np.ceil(y.max() + 0.5)) - y0],
                      "text": text, "line": number})

    level = rng.uniform(190, 245)
    paper = np.array([level - rng.uniform(10, 45), level - rng.uniform(0, 15), level])  # BGR: white, cream or yellowed
    ink_colour = rng.uniform([30, 20, 10], [110, 80, 70])
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    lamp_x, lamp_y = rng.uniform(0, out_w), rng.uniform(0, out_h)
    light = 1 - rng.uniform(0.2, 0.4) * np.hypot(xx - lamp_x, yy - lamp_y) / np.hypot(out_w, out_h)
    for rule, colour in zip(rules, ((215, 170, 120), (120, 120, 215))):
        paper = paper * (1 - rule[..., None]) + np.array(colour, np.float32) * rule[..., None]
    page = (paper * (1 - ink[..., None]) + ink_colour * ink[..., None]) * light[..., None]
    page = np.clip(np.round(page + rng.normal(0, rng.uniform(3, 8), page.shape)), 0, 255).astype(np.uint8)
    if jpeg_quality:
        page = cv2.imdecode(cv2.imencode(".jpg", page, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])[1], cv2.IMREAD_COLOR)
    return page, truth


def box_iou(a, b):
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    overlap = max(0, width) * max(0, height)
    return overlap / (a[2] * a[3] + b[2] * b[3] - overlap)


def matched_boxes(found, true, threshold=0.5):
    """How many found boxes match a true box one-to-one at IoU >= threshold (best pairs first)."""
    pairs = sorted(((box_iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(true)), reverse=True)
    used_found, used_true = set(), set()
    for iou, i, j in pairs:
        if iou < threshold:
            break
        if i not in used_found and j not in used_true:
            used_found.add(i)
            used_true.add(j)
    return len(used_found)


def page_text(lines):
    """Lines of words -> the page's text, whitespace normalised: words joined by single spaces, lines by newlines."""
    return "\n".join(" ".join(word for word in line if word) for line in lines).strip()


def bench_pages(args):
    model = ImageToWordModel(args.model)
    split = "valid" if os.path.isfile(os.path.join(args.data_dir, "splits", "valid.txt")) else None
    sources = [page for page in dataset_lines(args.data_dir, split) if page]
    if not sources:
        sys.exit(f"error: {args.data_dir} has no words to compose pages from")
    rng = np.random.default_rng(args.seed)
    found = true = hits = page_edits = cropped_edits = characters = 0
    single_words = single_edits = predict_edits = word_characters = 0
    seconds = 0.0
    for index in range(args.pages):
        source = sources[index % len(sources)]
        start = int(rng.integers(0, max(1, len(source) - args.lines + 1)))
        lines = [[(read_image(path), text) for path, text in line] for line in source[start:start + args.lines]]
        jpeg_quality = int(rng.integers(60, 95)) if index % 2 else None
        page, truth = compose_page(lines, rng, line_pitch=args.line_pitch, jpeg_quality=jpeg_quality, ruled=args.ruled)
        began = time.perf_counter()
        result = model.read_page(page)
        seconds += time.perf_counter() - began

        hits += matched_boxes([word["box"] for word in result["words"]], [word["box"] for word in truth])
        found, true = found + len(result["words"]), true + len(truth)
        truth_text = page_text([[text for _, text in line] for line in lines])
        read_text = page_text([[word["text"] for word in result["words"] if word["line"] == number]
                               for number in range(len(result["lines"]))])
        cropped = model.predict_batch([image for line in lines for image, _ in line])[0]
        cropped_lines, position = [], 0
        for line in lines:
            cropped_lines.append(cropped[position:position + len(line)])
            position += len(line)
        for (image, text), predicted in zip([word for line in lines for word in line], cropped):
            alone = model.read_page(image)  # a word cut by hand, as a user may upload it
            single_words += len(alone["words"]) == 1
            single_edits += edit_distance(list(" ".join(alone["text"].split())), list(text))
            predict_edits += edit_distance(list(predicted), list(text))
            word_characters += len(text)
        page_edits += edit_distance(list(read_text), list(truth_text))
        cropped_edits += edit_distance(list(page_text(cropped_lines)), list(truth_text))
        characters += len(truth_text)
    precision, recall = hits / max(found, 1), hits / max(true, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    print(f"Model {model.model_path}: {args.pages} pages of {args.lines} lines composed from {args.data_dir} "
          f"({split or 'all'} words), seed {args.seed}, {CORES} CPU cores")
    print(f"  word boxes at IoU >= 0.5: precision {precision:.3f}, recall {recall:.3f}, F1 {f1:.3f} "
          f"({hits} of {true} true words, {found} found)")
    print(f"  page CER {page_edits / characters:.2%} against {cropped_edits / characters:.2%} for the same words "
          f"cropped by hand ({100 * (page_edits - cropped_edits) / characters:+.2f} points)")
    print(f"  the same words one at a time (each word image as a page): read_page finds one word in "
          f"{single_words / true:.1%}, CER {single_edits / word_characters:.2%} (predict {predict_edits / word_characters:.2%})")
    print(f"  {args.pages / seconds:.2f} pages/s")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    subcommands = parser.add_subparsers(dest="subcommand", required=True)
    inference = subcommands.add_parser("inference", help="images per second: tutorial loop, batched path, model alone")
    inference.add_argument("--model", required=True, help="a .onnx file or a model folder")
    inference.add_argument("--csv", help="labelled images, columns image_path,label (default: the model folder's val.csv)")
    inference.add_argument("--images", type=int, default=1000, help="how many of the CSV's images (default %(default)s)")
    inference.add_argument("--quantize", action="store_true", help="make model.int8.onnx first (inferenceModel.py --quantize)")
    inference.set_defaults(run=bench_inference)
    photos = subcommands.add_parser("photos", help="CER on a labelled CSV's scans and on photo-like copies of them")
    photos.add_argument("--model", required=True, help="a .onnx file or a model folder")
    photos.add_argument("--csv", help="labelled images, columns image_path,label (default: the model folder's val.csv)")
    photos.add_argument("--images", type=int, help="only the CSV's first this many images (default: all)")
    photos.add_argument("--seed", type=int, default=0, help="of the photo-like copies (default %(default)s)")
    photos.set_defaults(run=bench_photos)
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
    budget = subcommands.add_parser("budget", help="CER after M minutes of training: tutorial preset vs defaults")
    budget.add_argument("--minutes", type=float, required=True, help="training budget of each run")
    budget.add_argument("--data-dir", required=True, help="a folder in the IAM words layout with splits/train.txt, valid.txt")
    budget.add_argument("--variant", action="append", default=[], metavar='"NAME: FLAGS"',
                        help='also train the defaults with these train.py flags, e.g. "tutorial model: --architecture tutorial"')
    budget.add_argument("--work-dir", help="where to keep the trained models (default: a new temporary folder)")
    budget.set_defaults(run=bench_budget)
    pages = subcommands.add_parser("pages", help="read_page on composed pages: word-box F1, page CER vs cropped words, pages/s")
    pages.add_argument("--model", required=True, help="a .onnx file or a model folder")
    pages.add_argument("--data-dir", required=True, help="word images in the IAM words layout (its validation split if it has splits/)")
    pages.add_argument("--pages", type=int, default=20, help="how many pages to compose and read (default %(default)s)")
    pages.add_argument("--lines", type=int, default=8, help="source lines per page (default %(default)s)")
    pages.add_argument("--seed", type=int, default=0, help="seed of the page composer (default %(default)s)")
    pages.add_argument("--line-pitch", type=float, metavar="UNITS",
                       help="lines this many word heights apart (default: 0.8-0.95, some lines touch; 1.3: none do)")
    pages.add_argument("--ruled", action="store_true", help="on ruled paper: a rule under each line, a margin rule")
    pages.set_defaults(run=bench_pages)
    args = parser.parse_args(argv)
    if min(getattr(args, name, 1) for name in ("steps", "workers", "batches")) < 1 or getattr(args, "minutes", 1) <= 0:
        parser.error("--steps, --workers, --batches and --minutes must be above 0")
    if getattr(args, "pages", 1) < 1 or getattr(args, "lines", 1) < 1:
        parser.error("--pages and --lines must be at least 1")
    if (getattr(args, "line_pitch", None) or 1) <= 0:
        parser.error("--line-pitch must be above 0")
    try:
        args.run(args)
    except ModelFileError as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
