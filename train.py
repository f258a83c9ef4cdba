"""Train a handwritten word recognizer (residual CNN + BiLSTM, CTC loss) and export it to ONNX.

    python train.py --dataset demo     # the embedded offline dataset, no download
    python train.py                    # the IAM words dataset (downloads ~1 GB once)
    python train.py --data-dir DIR     # a folder with labels.csv (image_path,label), or in IAM's words or lines layout,
                                       # or an eScriptorium/Transkribus export: ALTO or PAGE XML beside the page images
    python train.py --init-from MODEL --data-dir DIR   # fine-tune a model train.py wrote on new handwriting

Every GPU of the machine is used (--strategy auto); README: "GPUs and several machines"
shows how to train on several machines at once.

Read top to bottom: get the data, parse words.txt and split it, build the data pipeline, build the
model, train it, export the best epoch to ONNX, score the test words. The machinery each step calls
is in htr/ (docs/architecture.md); every flag is declared in configs.py (`python train.py --help`).
"""
import os
import sys

import htr  # noqa: F401  first: it sets TensorFlow's start-up options (htr/__init__.py)
import tensorflow as tf

from htr.data.demo import generate_demo_lines, generate_demo_words
from htr.data.iam import DatasetError, download_iam_words, parse_lines_txt, parse_words_txt, split_dataset
from htr.data.labels_csv import split_labels_csv
from htr.data.xml_pages import is_xml_export, split_xml_export
from htr.data.pipeline import data_provider, default_workers, training_augmentors
from htr.training.command_line import parse_train_args
from htr.training.distribute import DeviceSetupError, PaddedLastBatch, WholeGlobalBatches, writes_files
from htr.training.fit import fit, training_callbacks
from htr.training.results import export_best_epoch, score_test_set
from htr.training.run import (build_models, describe_run, new_configs, resumed_run, save_new_run, set_up_devices,
                              start_strategy)


def labels_csvs_of(args):
    """The labels.csv files to train on (--train-csv, DIR/labels.csv of --data-dir, or the demo lines
    of --dataset demo --preset line, generated once), or None for an IAM folder."""
    if args.data_dir and os.path.isfile(os.path.join(args.data_dir, "labels.csv")):
        return [os.path.join(args.data_dir, "labels.csv")]
    if not args.data_dir and not args.train_csv and args.dataset == "demo" and args.preset == "line":
        return [os.path.join(generate_demo_lines(num_lines=args.demo_words), "labels.csv")]
    return args.train_csv


def words_folder(args):
    """Step 1, the dataset: a folder in IAM's layout, words (words.txt, words/<a01>/<a01-000u>/<id>.png)
    or lines (lines.txt, lines/...), yours (--data-dir), generated (--dataset demo) or IAM's words,
    downloaded once."""
    if args.val_csv:
        raise DatasetError("--val-csv goes with a folder holding labels.csv, or with --train-csv")
    if not args.data_dir:
        return generate_demo_words(num_words=args.demo_words) if args.dataset == "demo" else \
            download_iam_words(url=args.dataset_url, archive=args.archive)
    if not any(os.path.isfile(os.path.join(args.data_dir, name)) for name in ("words.txt", "lines.txt")):
        raise DatasetError(f"{args.data_dir} holds neither labels.csv (columns image_path,label), words.txt "
                           "(IAM words layout), lines.txt (IAM lines layout) nor ALTO or PAGE XML files: see README: "
                           "Train on your own handwriting")
    return args.data_dir


def parse_iam_folder(dataset_dir, args):
    """Step 2's parser for an IAM folder: its lines.txt for the line preset or when it has no words.txt
    (IAM's own ascii folder has both), else its words.txt."""
    has = {name: os.path.isfile(os.path.join(dataset_dir, name)) for name in ("words.txt", "lines.txt")}
    lines = has["lines.txt"] and (args.preset == "line" or not has["words.txt"])
    return (parse_lines_txt if lines else parse_words_txt)(dataset_dir, drop_er=not args.keep_er)


def read_and_split(args):
    """Steps 1 and 2: the dataset's (image path, label) rows, from words.txt, lines.txt, labels.csv or
    an export's XML (its lines cut out once into a labels.csv, split by document: htr.data.xml_pages),
    split into train and val (and test, with --split aachen). Returns (splits, every label)."""
    try:
        labels_csvs = labels_csvs_of(args)
        export = not labels_csvs and args.data_dir and is_xml_export(args.data_dir)
        if args.val_dir and not export:
            raise DatasetError("--val-dir goes with a --data-dir of ALTO or PAGE XML files (with labels.csv: --val-csv)")
        if labels_csvs or export:
            if args.split not in ("auto", "random"):
                source = args.data_dir if export else " ".join(labels_csvs)
                raise DatasetError(f"--split {args.split} is for IAM folders; {source} is split at random (an export "
                                   "by document), or by --val-csv")
            splits = split_xml_export(args.data_dir, args.val_dir, args.val_csv, seed=args.seed) if export else \
                split_labels_csv(labels_csvs, args.val_csv, seed=args.seed)
            return splits, [label for rows in splits.values() for _, label in rows]
        dataset_dir = words_folder(args)
        words = parse_iam_folder(dataset_dir, args)
        split = args.split
        if split == "auto" and not args.data_dir and args.dataset == "iam":
            # IAM itself: the split papers report on, writers disjoint between train, validation and
            # test. A random split puts the same writers in training and validation and flatters val_CER.
            print("split auto: IAM, so the RWTH Aachen split by writer")
            split = "aachen"
        return split_dataset(words, split, dataset_dir, seed=args.seed), [label for _, _, label in words]
    except DatasetError as e:
        sys.exit(f"error: {e}")


def data_pipelines(splits, configs, args, replicas, resume_state):
    """Step 3, the data pipeline (htr.data.pipeline.data_provider) for training, with augmentation,
    and for validation. Under a strategy each batch is the global batch: Keras splits it between
    the replicas."""
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


def train(model, float32_model, train_data, val_data, splits, configs, args, resume_state, replicas):
    """Step 5: fit() with its callbacks (htr.training.fit: checkpoints, schedule, logs). Returns
    why training stopped early (or None), the last checkpoint and the training speed."""
    callbacks, last_checkpoint, speed = training_callbacks(configs, args, splits, val_data, float32_model,
                                                           resume_state, replicas)
    interrupted = fit(model, train_data, val_data, callbacks, last_checkpoint, configs, args, resume_state)
    print(f"Trained on {speed.samples} images in {speed.seconds / 60:.1f} minutes: "
          f"{speed.samples / max(speed.seconds, 1e-9):.0f} images/s, validation and callbacks included")
    return interrupted, last_checkpoint, speed


def main(argv=None):
    args = parse_train_args(argv, description=__doc__)
    strategy = start_strategy(args)
    # --resume: the run's own settings, split and training state instead of steps 1 and 2.
    configs, splits, resume_state = resumed_run(args) if args.resume else (new_configs(args), None, None)
    xla = set_up_devices(configs, args, strategy)

    # 1-2. The dataset, parsed into (image path, label) rows and split, saved in the model folder.
    if not args.resume:
        splits, labels = read_and_split(args)
        save_new_run(configs, splits, labels, args)
    describe_run(configs, strategy, xla)
    replicas = strategy.num_replicas_in_sync

    # 3. The data pipeline, augmenting the training images only.
    train_data, val_data = data_pipelines(splits, configs, args, replicas, resume_state)

    # 4. The model (model.py's compile_model), in the strategy's scope.
    model, float32_model = build_models(configs, strategy, args, resume_state)
    model.summary(line_length=110)

    # 5. Train.
    interrupted, last_checkpoint, speed = train(model, float32_model, train_data, val_data, splits, configs, args,
                                                resume_state, replicas)

    # 6-7. Only the chief exports the best epoch to ONNX and, with a test part (--split aachen,
    # IAM's default), scores it; the other workers are done.
    if writes_files(strategy):
        export_best_epoch(configs, val_data, last_checkpoint, speed, interrupted)
        score_test_set(configs.model_path)
    if interrupted:
        sys.exit(f"error: training stopped early: {interrupted}" + (
            ". The best epoch so far is exported; continue from the last good checkpoint with: "
            f"python train.py --resume {configs.model_path}" if writes_files(strategy) else ""))
    if writes_files(strategy):
        print(f"Next: python inferenceModel.py --model {configs.model_path}")


if __name__ == "__main__":
    main()
