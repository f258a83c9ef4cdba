"""Train a handwritten word recognizer (residual CNN + BiLSTM, CTC loss) and export it to ONNX.

    python train.py --dataset demo     # the embedded offline dataset, no download
    python train.py                    # the IAM words dataset (downloads ~1 GB once)
    python train.py --data-dir DIR     # a folder with labels.csv (image_path,label), or in the IAM words layout
    python train.py --init-from MODEL --data-dir DIR   # fine-tune a model train.py wrote on new handwriting

Every GPU of the machine is used (--strategy auto); README: "GPUs and several machines"
shows how to train on several machines at once.

Read top to bottom: get the data, parse words.txt, build the data pipeline, build the model,
train it, export the best epoch to ONNX. `python train.py --help` lists every flag.
"""
import argparse
import atexit
import functools
import json
import math
import os
import re
import shutil
import sys
import tempfile

import htr  # first: it sets TensorFlow's start-up options (htr/__init__.py)
import keras
import numpy as np
import tensorflow as tf
from keras.callbacks import CSVLogger, EarlyStopping, ReduceLROnPlateau, TensorBoard
from mltu.augmentors import RandomBrightness, RandomErodeDilate, RandomGaussianBlur, RandomRotate, RandomSharpen
from mltu.tensorflow.callbacks import TrainLogger
from mltu.transformers import ImageResizer, LabelIndexer, LabelPadding

from htr.data.augment import CropToInk, RandomNoise, RandomPhoto, RandomShear
from htr.training.callbacks import (BestModelCheckpoint, Float32Validation, LossBecameNaN, ResumableCheckpoint,
                                    RunTimeEstimate, StopOnSignalOrNaN, TrainingInterrupted, TrainingSpeed,
                                    TrainingTimeLimit, ValidationPreview, WarmupCosineSchedule)
from configs import PRESETS, ModelConfigs
from htr.data.pipeline import ImageCache, SeededDataProvider, default_workers
from htr.training.ctc import CTCLoss, CWERMetric
from htr.data.demo import generate_demo_words
from htr.training.distribute import (DeviceSetupError, PaddedLastBatch, PeerWatchdog, WholeGlobalBatches, make_strategy,
                        set_mixed_precision, share_batch_norm_statistics, stop_worker, writes_files)
from htr.training.finetune import FrozenCNN, StartingModelError, finetune_configs, load_starting_weights
from htr.data.iam import IAM_WORDS_URL, DatasetError, download_iam_words, parse_words_txt, split_dataset
from htr.data.labels_csv import read_labelled_csv, split_labels_csv
from htr.files import write_csv, write_file, write_json
from model import build_model, reader_of
from htr.export import OnnxExportError, export_onnx, onnx_keras_max_difference

# mltu's TrainLogger sets the root logger to INFO, which would let tf.distribute log every all-reduce.
tf.get_logger().setLevel("WARNING")


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return value


def positive_float(text):
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value


def non_negative_float(text):
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):  # inf would only show up later, as a NaN loss
        raise argparse.ArgumentTypeError(f"must be a finite number of at least 0, got {text}")
    return value


def dropout_rate(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def share_of_training(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def add_data_flags(parser):
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=["iam", "demo"], default="iam",
                      help="iam: download the IAM words archive (default); demo: generate the embedded "
                           "offline set of synthetic handwriting in Datasets/Demo_Words")
    data.add_argument("--demo-words", type=positive_int, default=3000, metavar="N",
                      help="with --dataset demo: how many word images to generate (default %(default)s; 100000 is "
                           "about IAM's size, README: Training on IAM)")
    data.add_argument("--data-dir", metavar="DIR",
                      help="train on your own folder instead of --dataset: DIR/labels.csv with the columns image_path,label "
                           "(paths relative to DIR; README: Train on your own handwriting), or an extracted folder in "
                           "the IAM words layout (words.txt + words/a01/a01-000u/*.png), where DIR/splits/train.txt and "
                           "valid.txt, when present, define the split")
    data.add_argument("--train-csv", metavar="FILE",
                      help="train on the images of this CSV (image_path,label; paths relative to its folder), "
                           "instead of --data-dir or --dataset")
    data.add_argument("--val-csv", metavar="FILE",
                      help="with a labels.csv folder or --train-csv: validate on this CSV's images, instead of a "
                           "random 10%% of the training rows (--seed)")
    data.add_argument("--archive", metavar="PATH",
                      help="with --dataset iam: an IAM_Words.zip or words.tgz you downloaded yourself, instead of downloading")
    data.add_argument("--dataset-url", default=IAM_WORDS_URL, help="with --dataset iam: where to download IAM_Words.zip from")
    data.add_argument("--split", choices=["auto", "random", "aachen"], default="auto",
                      help="auto: aachen for IAM (--dataset iam, downloaded or --archive); for a folder, its splits/ "
                           "lists when present, else random; random: 90/10 of the words with --seed; aachen: the "
                           "writer-independent RWTH Aachen split of IAM (adds test.csv, scored at the end)")
    data.add_argument("--keep-er", action="store_true",
                      help="keep IAM words whose segmentation is flagged 'er' (dropped by default: their boxes are wrong)")


def add_training_flags(parser):
    defaults, tutorial = ModelConfigs(), ModelConfigs("tutorial")
    train = parser.add_argument_group("training (defaults: the --preset's settings in configs.py)")
    train.add_argument("--preset", choices=sorted(PRESETS) + ["seed"], default="default",
                       help="default: this project's recipe; tutorial (or its old name, seed): the original tutorial's "
                            "exact model and settings, to reproduce README: Results (default %(default)s)")
    train.add_argument("--init-from", metavar="MODEL",
                       help="fine-tune: start from the weights of a model folder train.py wrote (or its model.keras), "
                            "with its input size, architecture and settings, and configs.FINETUNE's learning rate; "
                            "characters new to it get output units of their own")
    train.add_argument("--architecture", choices=["columns", "tutorial"], help="model.py's model (default: the preset's)")
    train.add_argument("--augmentation", choices=["rich", "photos", "tutorial"],
                       help="training-image augmentation, see training_augmentors: photos for words photographed "
                            "with a phone (README: Train on your own handwriting) (default: the preset's)")
    train.add_argument("--crop", choices=["columns", "band"],
                       help="how each word is cut before resizing, in training and in the exported model: columns, "
                            "to its ink at the left and right; band, also above and below to its writing band, which "
                            "gives loosely cropped photos a scan's proportions (default: the preset's)")
    train.add_argument("--dropout", type=dropout_rate,
                       help="share of activations dropped in training after each residual block and the BiLSTM "
                            f"(default: {defaults.dropout}, tutorial {tutorial.dropout})")
    train.add_argument("--ctc-shortcut", type=non_negative_float, metavar="WEIGHT",
                       help="train a second, CTC-only output straight off the CNN (model.py) with this weight on its "
                            f"loss; 0: none (default: {defaults.ctc_shortcut}, tutorial {tutorial.ctc_shortcut})")
    train.add_argument("--lr-schedule", choices=["cosine", "plateau"],
                       help="cosine: warm-up, then cosine decay to 0 at the end of --minutes or --epochs; plateau: "
                            "x0.9 after 10 epochs without progress (default: the preset's)")
    train.add_argument("--warmup", type=share_of_training, metavar="FRACTION",
                       help="with the cosine schedule: the share of training spent raising the learning rate from 0 "
                            f"to its peak (default: {defaults.warmup})")
    train.add_argument("--freeze-cnn", type=share_of_training, metavar="FRACTION",
                       help="with the cosine schedule: train only the BiLSTM and the outputs for this share of "
                            f"training, then everything (default: {defaults.freeze_cnn})")
    train.add_argument("--keep-aspect-ratio", choices=["yes", "no"],
                       help="yes: scale words to fit the input and pad with white; no: stretch them to it "
                            "(default: the preset's)")
    train.add_argument("--epochs", type=positive_int,
                       help="most epochs to train; early stopping may end sooner (default: the preset's: for "
                            f"default, enough epochs for {defaults.train_samples:,} training images and at least "
                            f"{defaults.min_epochs}; {tutorial.train_epochs} for tutorial)")
    train.add_argument("--minutes", type=positive_float,
                       help="stop training after this many minutes of wall-clock time, then export the best epoch as usual")
    train.add_argument("--batch-size", type=positive_int,
                       help="images per replica (one replica per GPU, or per worker without GPUs) in each step; "
                            "a step trains on the global batch of batch-size x replicas images "
                            f"(default: {defaults.batch_size}, tutorial {tutorial.batch_size})")
    train.add_argument("--learning-rate", type=positive_float,
                       help="Adam's (the schedule's peak), used as given for any number of replicas: it is not scaled "
                            "with the global batch (README says when to raise it) "
                            f"(default: {defaults.learning_rate}, tutorial {tutorial.learning_rate})")
    train.add_argument("--weight-decay", type=non_negative_float,
                       help="decoupled weight decay (AdamW): each step shrinks every weight by this x the learning rate; "
                            f"0: plain Adam (default: {defaults.weight_decay}, tutorial {tutorial.weight_decay})")
    train.add_argument("--model-dir", metavar="DIR",
                       help="where to write the model, logs and CSVs (default: a new Models/03_handwriting_recognition/<time> folder)")
    train.add_argument("--seed", type=int, default=42, help="for the split, weights and augmentation (default %(default)s)")
    train.add_argument("--resume", metavar="DIR",
                       help="continue an interrupted run from DIR's last checkpoint, with its data split and settings "
                            "(--epochs, --minutes, --strategy, --workers and --xla may be given anew)")


def add_scale_flags(parser):
    defaults, tutorial = ModelConfigs(), ModelConfigs("tutorial")
    scale = parser.add_argument_group("several GPUs or machines, speed (README: GPUs and several machines)")
    scale.add_argument("--strategy", choices=["auto", "default", "mirrored", "multiworker"], default="auto",
                       help="auto: mirrored when this machine has more than one GPU, else default (the default); "
                            "default: one device; mirrored: a replica on every GPU of this machine "
                            "(tf.distribute.MirroredStrategy); multiworker: a replica on every worker listed in the "
                            "TF_CONFIG environment variable (MultiWorkerMirroredStrategy), run the same command on each; "
                            "only the chief writes --model-dir")
    scale.add_argument("--mixed-precision", choices=["auto", "off", "float16", "bfloat16"],
                       help="compute in 16 bits, keep float32 weights: float16 on GPUs with tensor cores, bfloat16 on "
                            "recent GPUs and CPUs with bfloat16 instructions; auto: bfloat16 where the hardware has "
                            "it, else off; the exported ONNX model is float32 "
                            f"(default: {defaults.mixed_precision}, tutorial {tutorial.mixed_precision})")
    scale.add_argument("--workers", type=positive_int,
                       help="processes that prepare the training batches (read, augment, resize) while the model "
                            "trains; the batches are the same for any number (default: all cores but one with a GPU, "
                            "one per 8 cores without)")
    scale.add_argument("--xla", choices=["auto", "on", "off"], default="auto",
                       help="compile with XLA what it can of the training step (auto-clustering: the convolutions, "
                            "normalisation and dense layers; the cuDNN LSTM and the CER metric's CTC decoder, which "
                            "XLA cannot compile, stay TensorFlow's); auto: on with GPUs, off on CPUs, where it made "
                            "training slower (default: %(default)s)")
    scale.add_argument("--peer-timeout", type=positive_float, default=600, metavar="SECONDS",
                       help="with --strategy multiworker: a worker that makes no progress for this long (another "
                            "worker died or hangs) exits with an error instead of waiting forever; more than the "
                            "slowest step plus one validation pass (default %(default)g)")


def parse_args(argv=None):
    """The command line, checked: one line naming the flag for each mistake."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_flags(parser)
    add_training_flags(parser)
    add_scale_flags(parser)
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    if args.preset == "seed":
        args.preset = "tutorial"
    if args.resume:
        fixed = ["--dataset", "--demo-words", "--data-dir", "--train-csv", "--val-csv", "--init-from", "--archive",
                 "--dataset-url", "--split", "--keep-er", "--preset", "--architecture", "--augmentation", "--dropout", "--ctc-shortcut",
                 "--lr-schedule", "--warmup", "--freeze-cnn", "--keep-aspect-ratio", "--batch-size", "--learning-rate",
                 "--weight-decay", "--model-dir", "--seed", "--mixed-precision"]
        clashes = [flag for flag in fixed if any(a == flag or a.startswith(flag + "=") for a in argv)]
        if clashes:
            parser.error(f"--resume goes on with the run's own data and settings; drop {' '.join(clashes)}")
    if args.init_from:
        clashes = [flag for flag in ("--preset", "--architecture", "--keep-aspect-ratio")
                   if any(a == flag or a.startswith(flag + "=") for a in argv)]
        if clashes:
            parser.error(f"--init-from trains the starting model's architecture at its input size; drop {' '.join(clashes)}")
    if args.train_csv and args.data_dir:
        parser.error("--train-csv names the training images itself; drop --data-dir (or --train-csv, to use DIR/labels.csv)")
    if args.minutes and args.strategy == "multiworker":
        parser.error("--minutes cannot be used with --strategy multiworker: each worker's clock would stop it at "
                     "a different batch; use --epochs")
    return args


def labels_csv_of(args):
    """The labels.csv to train on (--train-csv, or DIR/labels.csv of --data-dir), or None for IAM words."""
    if args.data_dir and os.path.isfile(os.path.join(args.data_dir, "labels.csv")):
        return os.path.join(args.data_dir, "labels.csv")
    return args.train_csv


def new_run(args, configs):
    """Steps 1 and 2 for a new run: get the dataset, parse words.txt (or labels.csv), split it,
    and save the configs and the split in the model folder."""
    # 1. Get the dataset: a folder with words.txt and words/<a01>/<a01-000u>/<id>.png, or one with labels.csv.
    # 2. Parse words.txt into (word id, image path, label) and split it, or labels.csv into its rows.
    try:
        labels_csv = labels_csv_of(args)
        if labels_csv:
            if args.split not in ("auto", "random"):
                raise DatasetError(f"--split {args.split} is for IAM words folders; {labels_csv} is split at random, "
                                   "or by --val-csv")
            splits = split_labels_csv(labels_csv, args.val_csv, seed=args.seed)
            labels = [label for rows in splits.values() for _, label in rows]
        else:
            if args.val_csv:
                raise DatasetError("--val-csv goes with a folder holding labels.csv, or with --train-csv")
            if args.data_dir:
                dataset_dir = args.data_dir
                if not os.path.isfile(os.path.join(dataset_dir, "words.txt")):
                    raise DatasetError(f"{dataset_dir} holds neither labels.csv (columns image_path,label) nor words.txt "
                                       "(IAM words layout): see README: Train on your own handwriting")
            elif args.dataset == "demo":
                dataset_dir = generate_demo_words(num_words=args.demo_words)
            else:
                dataset_dir = download_iam_words(url=args.dataset_url, archive=args.archive)
            words = parse_words_txt(dataset_dir, drop_er=not args.keep_er)
            split = args.split
            if split == "auto" and not args.data_dir and args.dataset == "iam":
                # IAM itself: the split papers report on, writers disjoint between train, validation and
                # test. A random split puts the same writers in training and validation and flatters val_CER.
                print("split auto: IAM, so the RWTH Aachen split by writer")
                split = "aachen"
            splits = split_dataset(words, split, dataset_dir, seed=args.seed)
            labels = [label for _, _, label in words]
    except DatasetError as e:
        sys.exit(f"error: {e}")

    # The model predicts one of these characters (or the CTC blank) at each time step. A run --init-from
    # a model starts from its characters, in its order, and adds the new ones after them (finetune.py).
    new_characters = sorted(set("".join(labels)) - set(configs.vocab))
    if args.init_from:
        print(f"Fine-tuning {args.init_from}: {len(configs.vocab)} characters, {len(new_characters)} new: "
              f"{''.join(new_characters)!r}")
    configs.vocab += "".join(new_characters)
    configs.max_text_length = max(len(label) for label in labels)
    if configs.train_epochs is None:  # the default preset's length scales with the data (configs.py)
        configs.train_epochs = max(configs.min_epochs, math.ceil(configs.train_samples / len(splits["train"])))
        print(f"Training for {configs.train_epochs} epochs ({configs.train_epochs * len(splits['train']):,} images; "
              "--epochs or --minutes to change)")
    try:
        configs.save()
        # The split is saved before training, so inferenceModel.py can score any checkpoint,
        # and --resume continues on exactly the same images.
        for part, rows in splits.items():
            if rows:
                write_csv(os.path.join(configs.model_path, f"{part}.csv"), ["image_path", "label"], rows)
        # The training words, for lexicon-constrained decoding (inferenceModel.py --lexicon).
        lexicon_path = os.path.join(configs.model_path, "lexicon.txt")
        write_file(lexicon_path, "".join(f"{word}\n" for word in sorted({label for _, label in splits["train"]})))
    except OSError as e:
        sys.exit(f"error: cannot write to the model folder {configs.model_path}: {e.strerror or e}")
    return splits


def resumed_run(args):
    """Steps 1 and 2 for --resume: the configs, split and training state the run saved."""
    state_path = os.path.join(args.resume, "last.json")
    if not os.path.isfile(state_path):
        sys.exit(f"error: {args.resume} has no last.json: it is not a model folder written by train.py, or its "
                 "first epoch never finished (start it again without --resume)")
    configs = ModelConfigs.load(os.path.join(args.resume, "configs.yaml"))
    for name in ("preset", "architecture", "augmentation"):  # the tutorial preset's old name
        if getattr(configs, name) == "seed":
            setattr(configs, name, "tutorial")
    configs.__dict__.setdefault("weight_decay", 0.0)  # runs saved before --weight-decay existed trained without it
    configs.__dict__.setdefault("ctc_shortcut", 0.0)  # and before --ctc-shortcut, without a shortcut
    configs.__dict__.setdefault("warmup", 0.03)  # and before --warmup, with this one
    configs.__dict__.setdefault("freeze_cnn", 0.0)
    configs.__dict__.setdefault("crop", "columns")
    configs.model_path = args.resume
    configs.train_epochs = args.epochs or configs.train_epochs
    with open(state_path) as f:
        state = json.load(f)
    splits = {part: [list(row) for row in read_labelled_csv(os.path.join(args.resume, f"{part}.csv"))]
              for part in ("train", "val")}
    print(f"Resuming {args.resume} at epoch {state['next_epoch'] + 1} (best val_CER so far {state['best_val_CER']})")
    return configs, splits, state


def as_model_inputs(images, labels, ctc_shortcut=False):
    """A batch as NumPy arrays, images as float32 like the model's input: at the start of fit()
    Keras averages one batch across the workers of a multi-worker run, and TensorFlow's collective
    ops cannot add uint8. A model with a CTC shortcut has two outputs, both trained on the labels."""
    images, labels = np.array(images, dtype=np.float32), np.array(labels)
    return images, ({"output": labels, "shortcut": labels} if ctc_shortcut else labels)


def data_provider(rows, configs, batch_size, augmentors=(), shuffle=False, seed=0, epoch=0, workers=1):
    """Step 3, the data pipeline: read the image (decoded once, data_pipeline.ImageCache), augment
    it (training only), resize it to the model's input, turn the label into vocabulary indices
    padded to a fixed length (padding = len(vocab), the CTC blank), and batch. `workers` processes
    prepare the batches while the model trains; each sample's augmentation and each epoch's order
    depend only on (seed, epoch, sample index), so any number of workers gives the same batches."""
    provider = SeededDataProvider(
        rows,
        ImageCache([path for path, _ in rows]),
        seed=seed,
        shuffle=shuffle,
        epoch=epoch,
        batch_size=batch_size,
        augmentors=list(augmentors),
        transformers=[
            # As inference does it (ImageToWordModel.resize): a loose crop fills the width like a tight one.
            CropToInk(band=configs.crop == "band"),
            # Padding is white, like the paper around the word.
            ImageResizer(configs.width, configs.height, keep_aspect_ratio=configs.keep_aspect_ratio,
                         padding_color=(255, 255, 255)),
            LabelIndexer(configs.vocab),
            LabelPadding(max_word_length=configs.max_text_length, padding_value=len(configs.vocab)),
        ],
        batch_postprocessors=[functools.partial(as_model_inputs, ctc_shortcut=configs.ctc_shortcut > 0)],
    )
    # mltu's DataProvider never calls Keras 3's PyDataset.__init__, so fit() would ignore
    # workers=... and prepare every batch in the training loop.
    keras.utils.PyDataset.__init__(provider, workers=workers, use_multiprocessing=True)
    return provider


def training_augmentors(name):
    """Random changes to each training image, so the model learns the words, not the pictures.
    Paper is light, so rotation and slant fill with white, and erode/dilate needs a kernel over
    1 pixel to change anything (mltu's default is (1, 1))."""
    if name == "tutorial":
        return [RandomBrightness(), RandomErodeDilate(kernel_size=(2, 2)), RandomSharpen(),
                RandomRotate(angle=10, borderValue=(255, 255, 255))]
    # "rich": handwriting varies most in slant and stroke; words are rarely rotated by 10 degrees.
    rich = [RandomBrightness(), RandomErodeDilate(kernel_size=(2, 2)), RandomSharpen(),
            RandomShear(max_shear=0.5), RandomRotate(angle=3, borderValue=(255, 255, 255)),
            RandomGaussianBlur(sigma=1.0, random_chance=0.2), RandomNoise(random_chance=0.2)]
    if name == "photos":
        # Half the words become photo-like (last, so the white that slant and rotation fill in is
        # photographed too): the model's PaperNormalization levels paper and ink, this teaches the
        # rest. Not the default: it reads photos far better, and scans a little worse, in the same epochs.
        return rich + [RandomPhoto(random_chance=0.5)]
    return rich


def data_pipelines(splits, configs, args, replicas, resume_state):
    """Step 3 for training and validation (data_provider above). Under a strategy each batch is
    the global batch: Keras splits it between the replicas."""
    workers = args.workers or default_workers(gpus=len(tf.config.list_logical_devices("GPU")))
    try:
        train_data = data_provider(splits["train"], configs, configs.batch_size * replicas,
                                   training_augmentors(configs.augmentation), shuffle=True, seed=args.seed,
                                   epoch=resume_state["next_epoch"] if resume_state else 0, workers=workers)
        # Validation keeps no activations for gradients, so 4x larger batches fit and run faster.
        val_data = data_provider(splits["val"], configs, configs.batch_size * replicas * 4, workers=workers)
    except DatasetError as e:
        sys.exit(f"error: {e}")
    print(f"Data pipeline: {workers} worker process{'es' if workers > 1 else ''}; "
          f"{len(splits['train']) + len(splits['val'])} images decoded into memory "
          f"({(train_data.cache.nbytes + val_data.cache.nbytes) / 2**20:.0f} MB) in "
          f"{train_data.cache.seconds + val_data.cache.seconds:.1f} s")
    if replicas > 1:
        # Every replica needs a share of every batch, the last one too (distribute.py says why and what it costs).
        try:
            train_data = WholeGlobalBatches(train_data, configs.batch_size * replicas, len(splits["train"]))
        except DeviceSetupError as e:
            sys.exit(f"error: {e}")
        val_data = PaddedLastBatch(val_data, configs.batch_size * replicas * 4)
    return train_data, val_data


def compile_model(configs):
    """Step 4, the model: images in, per-time-step character probabilities out, trained with CTC."""
    model = build_model(configs)
    padding_token = len(configs.vocab)
    loss, loss_weights, metrics = CTCLoss(padding_token), None, [CWERMetric(padding_token)]
    if configs.ctc_shortcut:
        # The shortcut's CTC loss counts ctc_shortcut times the reader's; CER and WER are the reader's.
        loss = {"output": loss, "shortcut": CTCLoss(padding_token)}
        loss_weights = {"output": 1.0, "shortcut": configs.ctc_shortcut}
        metrics = {"output": metrics}
    model.compile(
        # With weight_decay > 0 this is AdamW (Loshchilov & Hutter 2019): each step also pulls every
        # weight towards 0 by weight_decay x the learning rate, a regulariser. The tutorial preset's
        # 0 gives plain Adam.
        optimizer=keras.optimizers.Adam(learning_rate=configs.learning_rate, weight_decay=configs.weight_decay or None),
        loss=loss,
        loss_weights=loss_weights,
        # Weighted: the padding of a last validation batch under several replicas has weight 0 (distribute.py).
        weighted_metrics=metrics,
    )
    return model


def new_configs(args):
    """The preset's settings (with --init-from: the starting model's), with the flags given on top."""
    try:
        configs = finetune_configs(args.init_from) if args.init_from else ModelConfigs(args.preset)
    except StartingModelError as e:
        sys.exit(f"error: {e}")
    for flag in ("architecture", "augmentation", "crop", "dropout", "ctc_shortcut", "lr_schedule", "batch_size",
                 "learning_rate", "weight_decay", "mixed_precision", "warmup", "freeze_cnn"):
        if getattr(args, flag) is not None:
            setattr(configs, flag, getattr(args, flag))
    if args.keep_aspect_ratio is not None:
        configs.keep_aspect_ratio = args.keep_aspect_ratio == "yes"
    configs.train_epochs = args.epochs or configs.train_epochs
    configs.model_path = args.model_dir or configs.model_path
    return configs


def check_free_space(model_path):
    free_mb = shutil.disk_usage(model_path).free / 2**20
    if free_mb < 100:
        sys.exit(f"error: only {free_mb:.0f} MB free for {model_path}; checkpoints need about 100 MB")


def build_models(configs, strategy, args, resume_state):
    """Step 4, the model (compile_model above), built in the strategy's scope, so its variables
    and the optimizer's live on every replica. Under mixed precision a float32 copy of it
    validates each epoch (Float32Validation in callbacks.py): the exported ONNX model is
    float32, and 16-bit arithmetic reads worse than it does. Returns (model, float32 copy or None)."""
    with strategy.scope():
        if resume_state:
            # The whole model as last saved, optimizer state included.
            model = keras.models.load_model(os.path.join(args.resume, "last.keras"))
            model.optimizer.learning_rate = resume_state["learning_rate"]
        else:
            model = compile_model(configs)
            if args.init_from:
                try:
                    load_starting_weights(model, configs)
                except StartingModelError as e:
                    sys.exit(f"error: {e}")
        float32_model = None
        if configs.mixed_precision != "off":
            training_policy = keras.config.dtype_policy()
            keras.config.set_dtype_policy("float32")
            float32_model = compile_model(configs)
            keras.config.set_dtype_policy(training_policy)
    share_batch_norm_statistics(model, strategy)
    # Never the whole step in one XLA program (Keras' jit_compile, which its "auto" turns on with a
    # GPU): XLA has no kernel for the CER metric's CTC decoder, nor for the cuDNN LSTM. --xla
    # compiles the rest instead (use_xla).
    for m in filter(None, (model, float32_model)):
        m.jit_compile = False
    return model, float32_model


def use_xla(mode):
    """--xla: TensorFlow's auto-clustering compiles each connected group of ops XLA supports
    into one fused program and leaves the others as they are. Returns whether it is on."""
    on = mode == "on" or (mode == "auto" and bool(tf.config.list_logical_devices("GPU")))
    tf.config.optimizer.set_jit("autoclustering" if on else False)
    return on


def training_callbacks(configs, args, splits, val_data, float32_model, resume_state, replicas):
    """What runs around fit(): everything watches val_CER, lower is better, hence mode="min"
    (Keras 3 requires it). Returns the list, and the two callbacks main() reads afterwards."""
    best_checkpoint = BestModelCheckpoint(os.path.join(configs.model_path, "model.keras"),
                                          initial_best=resume_state and resume_state["best_val_CER"])
    if configs.lr_schedule == "cosine":
        # The schedule decides the end; no early stopping, which would cut it short.
        schedule = WarmupCosineSchedule(configs.learning_rate, configs.train_epochs, args.minutes,
                                        progress=resume_state["lr_schedule"]["progress"] if resume_state else 0.0,
                                        warmup=configs.warmup)
        counters = {"lr_schedule": (schedule, ["progress"])}
        schedule_callbacks = [schedule] + ([FrozenCNN(schedule, configs.freeze_cnn)] if configs.freeze_cnn else [])
    else:
        early_stopping = EarlyStopping(monitor="val_CER", patience=20, mode="min", verbose=1)
        reduce_lr = ReduceLROnPlateau(monitor="val_CER", factor=0.9, min_delta=1e-10, patience=10, mode="min", verbose=1)
        counters = {"early_stopping": (early_stopping, ["wait", "best", "best_epoch"]),
                    "reduce_lr": (reduce_lr, ["wait", "best", "cooldown_counter"])}
        schedule_callbacks = [early_stopping, reduce_lr]
    last_checkpoint = ResumableCheckpoint(configs.model_path, best_checkpoint, counters, resume_state)
    speed = TrainingSpeed(configs.batch_size * replicas, len(splits["train"]))
    # A few validation words, read after every epoch and shown in TensorBoard.
    preview_images = val_data[0][0]
    preview_labels = [label for _, label in splits["val"][:8]]
    callbacks = schedule_callbacks + [
        best_checkpoint,
        last_checkpoint,
        TrainLogger(configs.model_path),
        CSVLogger(os.path.join(configs.model_path, "history.csv"), append=bool(resume_state)),
        TensorBoard(os.path.join(configs.model_path, "logs"), update_freq="epoch"),
        ValidationPreview(os.path.join(configs.model_path, "logs"), preview_images[:8].astype(np.uint8), preview_labels,
                          configs.vocab, reader=float32_model and reader_of(float32_model)),
        StopOnSignalOrNaN(),
        speed,
        RunTimeEstimate(configs.train_epochs, args.minutes, on_gpu=bool(tf.config.list_logical_devices("GPU"))),
    ] + ([TrainingTimeLimit(args.minutes)] if args.minutes else [])
    if args.strategy == "multiworker":
        callbacks.append(PeerWatchdog(args.peer_timeout))
    if float32_model:
        # First, so the callbacks after it read its val_loss, val_CER and val_WER.
        callbacks.insert(0, Float32Validation(float32_model, val_data))
    return callbacks, last_checkpoint, speed


def train(model, train_data, val_data, callbacks, last_checkpoint, configs, args, resume_state):
    """Step 5: fit(), and what to do when it is cut short. Returns the reason training stopped
    early (TrainingInterrupted), or None."""
    try:
        model.fit(train_data, epochs=configs.train_epochs, callbacks=callbacks,
                  # Without mixed precision the model validates itself; with it, Float32Validation does.
                  validation_data=None if configs.mixed_precision != "off" else val_data,
                  initial_epoch=resume_state["next_epoch"] if resume_state else 0)
    except TrainingInterrupted as e:
        if not isinstance(e, LossBecameNaN):  # after a NaN loss the weights are garbage: keep the last good checkpoint
            last_checkpoint.save(next_epoch=last_checkpoint.epoch)
        return e
    except (OSError, tf.errors.ResourceExhaustedError) as e:
        # A full disk reaches us as OSError from Python's writers, and as ResourceExhaustedError
        # from TensorBoard's (which is also how TensorFlow reports running out of memory).
        if isinstance(e, tf.errors.ResourceExhaustedError) and "No space left on device" not in str(e):
            raise
        reason = getattr(e, "strerror", None) or "No space left on device"
        sys.exit(f"error: could not write in {configs.model_path} ({reason}); the last good checkpoint is "
                 f"intact: free some space, then python train.py --resume {configs.model_path}")
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
        if args.strategy != "multiworker":
            raise
        # TensorFlow's coordination service noticed a worker that stopped sending heartbeats (killed, crashed).
        peers = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", e.message))) or ["a peer"]
        stop_worker(f"the multi-worker run lost {', '.join(peers)} ({type(e).__name__})")
    return None


def export(configs, val_data):
    """Step 6: the best epoch's weights in a float32 copy of the model on one device, whatever the
    strategy and precision of training: ONNX gets a plain float32 model, checked against the same
    model on a batch of validation images. Returns the largest difference."""
    keras.config.set_dtype_policy("float32")
    export_model = build_model(configs)
    export_model.load_weights(os.path.join(configs.model_path, "model.keras"))
    export_model = reader_of(export_model)  # without the CTC shortcut, which only training uses
    onnx_path = os.path.join(configs.model_path, "model.onnx")
    metadata = {"vocab": configs.vocab, "height": configs.height, "width": configs.width,
                "keep_aspect_ratio": configs.keep_aspect_ratio, "max_text_length": configs.max_text_length,
                "crop_to_ink": configs.crop}
    try:
        export_onnx(export_model, onnx_path, metadata)
    except OnnxExportError as e:
        sys.exit(f"error: {e}")
    images = val_data[0][0]
    difference = onnx_keras_max_difference(export_model, onnx_path, images)
    write_json({"images": len(images), "max_abs_difference": difference},
                          os.path.join(configs.model_path, "onnx_check.json"))
    if difference > 1e-4:
        sys.exit(f"error: the ONNX model's outputs differ from Keras by {difference:.2g} (> 1e-4); do not use {onnx_path}")
    print(f"Exported {onnx_path} (ONNX vs Keras max difference {difference:.1e} on {len(images)} validation images)")


def score_test_set(model_dir):
    """Step 7, when the split has a test part (--split aachen): the exported ONNX model reads the
    test words once, at the very end. Nothing chose the model or its settings on them, so these
    are the figures to compare with papers; they go to test_scores.json beside the model."""
    # Imported when needed, as in onnx_export.py: importing onnxruntime writes a file into the temporary folder.
    from htr.recognizer import ImageToWordModel, predict_files
    from htr.scoring import score
    rows = read_labelled_csv(os.path.join(model_dir, "test.csv"))
    predictions, _ = predict_files(ImageToWordModel(model_dir), [path for path, _ in rows], batch_size=64)
    summary, _ = score(rows, predictions)
    write_json(summary, os.path.join(model_dir, "test_scores.json"))
    print(f"Test set, {summary['words']} words by writers unseen in training: CER {summary['corpus_cer']:.2%}, "
          f"average CER {summary['average_cer']:.2%}, word accuracy {summary['word_accuracy']:.2%} "
          f"({os.path.join(model_dir, 'test_scores.json')})")


def main(argv=None):
    args = parse_args(argv)
    try:
        # First of all: the multi-worker strategy must set up TensorFlow before anything runs in it.
        strategy = make_strategy(args.strategy)
    except DeviceSetupError as e:
        sys.exit(f"error: {e}")
    # The same seed on every worker of a multi-worker run: the same split and the same shuffling,
    # so each worker's share of a batch is a different part of the same global batch.
    keras.utils.set_random_seed(args.seed)
    configs, splits, resume_state = resumed_run(args) if args.resume else (new_configs(args), None, None)
    try:
        # "auto" becomes what it chose, so configs.yaml says how the run computed.
        configs.mixed_precision = set_mixed_precision(configs.mixed_precision)
    except DeviceSetupError as e:
        sys.exit(f"error: {e}")
    xla = use_xla(args.xla)
    if not writes_files(strategy):
        # The other workers of a multi-worker run train the same model but keep nothing: whatever
        # they write goes to a temporary folder, deleted when they exit.
        configs.model_path = tempfile.mkdtemp(prefix="train_worker_")
        atexit.register(shutil.rmtree, configs.model_path, ignore_errors=True)

    # 1-2. The dataset, parsed into (image path, label) rows and split (new_run above).
    if not args.resume:
        splits = new_run(args, configs)
    replicas = strategy.num_replicas_in_sync
    print(f"Model folder: {configs.model_path}  ({configs.preset} preset, {len(configs.vocab)} characters, "
          f"longest word {configs.max_text_length}{', XLA on' if xla else ''})")
    if replicas > 1:
        print(f"{type(strategy).__name__}: {replicas} replicas, global batch {configs.batch_size * replicas} "
              f"({configs.batch_size} per replica){'' if writes_files(strategy) else '; this worker keeps no files'}")
    check_free_space(configs.model_path)

    # 3. The data pipeline (data_pipelines above), augmenting the training images only.
    train_data, val_data = data_pipelines(splits, configs, args, replicas, resume_state)

    # 4. The model (build_models and compile_model above).
    model, float32_model = build_models(configs, strategy, args, resume_state)
    model.summary(line_length=110)

    # 5. Train (training_callbacks and train above).
    callbacks, last_checkpoint, speed = training_callbacks(configs, args, splits, val_data, float32_model,
                                                           resume_state, replicas)
    interrupted = train(model, train_data, val_data, callbacks, last_checkpoint, configs, args, resume_state)
    print(f"Trained on {speed.samples} images in {speed.seconds / 60:.1f} minutes: "
          f"{speed.samples / max(speed.seconds, 1e-9):.0f} images/s, validation and callbacks included")

    # 6. Export the best epoch to ONNX (export above). Only the chief exports; the other workers are done.
    if writes_files(strategy):
        if not os.path.exists(os.path.join(configs.model_path, "model.keras")):
            sys.exit(f"error: no epoch finished in {configs.model_path}{f' ({interrupted})' if interrupted else ''}; "
                     "nothing to export")
        write_json({"epochs": last_checkpoint.epoch + 1, "samples": speed.samples, "seconds": speed.seconds},
                              os.path.join(configs.model_path, "training.json"))
        export(configs, val_data)
        # 7. With a test part (--split aachen, IAM's default), its scores (score_test_set above).
        if os.path.exists(os.path.join(configs.model_path, "test.csv")):
            score_test_set(configs.model_path)
    if interrupted:
        sys.exit(f"error: training stopped early: {interrupted}" + (
            ". The best epoch so far is exported; continue from the last good checkpoint with: "
            f"python train.py --resume {configs.model_path}" if writes_files(strategy) else ""))
    if writes_files(strategy):
        print(f"Next: python inferenceModel.py --model {configs.model_path}")


if __name__ == "__main__":
    main()
