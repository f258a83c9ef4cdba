"""A training run's set-up, for train.py: its configs (new, --init-from or --resume), its model
folder, the devices it computes on, and the models it trains, built in the strategy's scope."""
import atexit
import json
import math
import os
import shutil
import sys
import tempfile

import keras
import tensorflow as tf

from configs import SETTINGS, ModelConfigs, load_configs
from htr.data.labels_csv import read_labelled_csv
from htr.files import write_csv, write_file
from htr.training.distribute import (DeviceSetupError, make_strategy, set_mixed_precision, share_batch_norm_statistics,
                                     writes_files)
from htr.training.finetune import StartingModelError, finetune_configs, load_starting_weights
from model import compile_model


def start_strategy(args):
    """First of all: the multi-worker strategy must set up TensorFlow before anything runs in it.
    The same seed on every worker then gives the same split and the same shuffling, so each
    worker's share of a batch is a different part of the same global batch."""
    try:
        strategy = make_strategy(args.strategy)
    except DeviceSetupError as e:
        sys.exit(f"error: {e}")
    keras.utils.set_random_seed(args.seed)
    return strategy


def new_configs(args):
    """The preset's settings (with --init-from: the starting model's), with the flags given on top."""
    try:
        configs = finetune_configs(args.init_from) if args.init_from else ModelConfigs(args.preset)
    except StartingModelError as e:
        sys.exit(f"error: {e}")
    for setting in SETTINGS:
        if isinstance(setting.default, dict) and getattr(args, setting.name, None) is not None:
            setattr(configs, setting.saved_as, getattr(args, setting.name))
    configs.model_path = args.model_dir or configs.model_path
    return configs


def resumed_run(args):
    """Steps 1 and 2 for --resume: the configs, split and training state the run saved."""
    state_path = os.path.join(args.resume, "last.json")
    if not os.path.isfile(state_path):
        sys.exit(f"error: {args.resume} has no last.json: it is not a model folder written by train.py, or its "
                 "first epoch never finished (start it again without --resume)")
    configs = load_configs(os.path.join(args.resume, "configs.yaml"))
    configs.model_path = args.resume
    configs.train_epochs = args.epochs or configs.train_epochs
    with open(state_path) as f:
        state = json.load(f)
    splits = {part: [list(row) for row in read_labelled_csv(os.path.join(args.resume, f"{part}.csv"))]
              for part in ("train", "val")}
    print(f"Resuming {args.resume} at epoch {state['next_epoch'] + 1} (best val_CER so far {state['best_val_CER']})")
    return configs, splits, state


def set_up_devices(configs, args, strategy):
    """Mixed precision and XLA as asked; on a multi-worker run's other workers, a temporary model
    folder. Returns whether XLA is on."""
    try:
        # "auto" becomes what it chose, so configs.yaml says how the run computed.
        configs.mixed_precision = set_mixed_precision(configs.mixed_precision)
    except DeviceSetupError as e:
        sys.exit(f"error: {e}")
    xla = use_xla(args.xla)
    if not writes_files(strategy):
        # The other workers train the same model but keep nothing: whatever they write goes to a
        # temporary folder, deleted when they exit.
        configs.model_path = tempfile.mkdtemp(prefix="train_worker_")
        atexit.register(shutil.rmtree, configs.model_path, ignore_errors=True)
    return xla


def use_xla(mode):
    """--xla: TensorFlow's auto-clustering compiles each connected group of ops XLA supports
    into one fused program and leaves the others as they are. Returns whether it is on."""
    on = mode == "on" or (mode == "auto" and bool(tf.config.list_logical_devices("GPU")))
    tf.config.optimizer.set_jit("autoclustering" if on else False)
    return on


def save_new_run(configs, splits, labels, args):
    """The vocabulary, longest word and length of a new run, then its configs.yaml, split and
    lexicon in the model folder."""
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
        # A line model's lexicon is the words of its lines: inference applies it word by word.
        words = {word for _, label in splits["train"] for word in (label.split() if configs.width is None else [label])}
        write_file(lexicon_path, "".join(f"{word}\n" for word in sorted(words)))
    except OSError as e:
        sys.exit(f"error: cannot write to the model folder {configs.model_path}: {e.strerror or e}")


def describe_run(configs, strategy, xla):
    """What the run trains where, and a check that its folder has room for the checkpoints."""
    replicas = strategy.num_replicas_in_sync
    print(f"Model folder: {configs.model_path}  ({configs.preset} preset, {len(configs.vocab)} characters, "
          f"longest word {configs.max_text_length}{', XLA on' if xla else ''})")
    if replicas > 1:
        print(f"{type(strategy).__name__}: {replicas} replicas, global batch {configs.batch_size * replicas} "
              f"({configs.batch_size} per replica){'' if writes_files(strategy) else '; this worker keeps no files'}")
    free_mb = shutil.disk_usage(configs.model_path).free / 2**20
    if free_mb < 100:
        sys.exit(f"error: only {free_mb:.0f} MB free for {configs.model_path}; checkpoints need about 100 MB")


def build_models(configs, strategy, args, resume_state):
    """The model (model.compile_model), built in the strategy's scope, so its variables and the
    optimizer's live on every replica. Under mixed precision a float32 copy of it validates each
    epoch (Float32Validation in callbacks.py): the exported ONNX model is float32, and 16-bit
    arithmetic reads worse than it does. Returns (model, float32 copy or None)."""
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
