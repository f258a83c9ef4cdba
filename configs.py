"""Every training setting, declared once in SETTINGS: train.py's flags (htr/training/command_line.py),
the presets, what --resume may change, and what an older version's configs.yaml means.

Two presets: "default" (this project's recipe) and "tutorial" (the original tutorial's exact
settings and model, kept so anyone can reproduce the comparison in README: Results).
"""
import os
from dataclasses import dataclass
from datetime import datetime

import yaml
from mltu.configs import BaseModelConfigs

from htr.data.iam import IAM_WORDS_URL

PRESETS = ("default", "tutorial", "line")


@dataclass
class Setting:
    """default: without the flag, or one value per preset; type: a check in htr/training/command_line.py;
    saved_as: its name in configs.yaml; anew: --resume takes it anew, not from the run; before: what a
    configs.yaml older than the setting implies (None: there is none); renamed: old values -> today's."""
    name: str
    group: str
    help: str
    type: str = None
    choices: tuple = None
    default: object = None
    saved_as: str = None
    anew: bool = False
    before: object = None
    renamed: dict = None
    metavar: str = None


TUTORIAL_OLD_NAME = {"seed": "tutorial"}
# Without --epochs, a run takes epochs enough for train_samples images, at least min_epochs: the recipe was tuned
# at 200 epochs of gw_words' 2,433 words (~500,000 images; README: How fast and how good). A larger set needs
# fewer, more varied passes: IAM's 50,000-87,000 training words get 20 epochs, not days of 200 on a CPU.
SETTINGS = [
    Setting("dataset", "data", "iam: download the IAM words archive; demo: generate the embedded offline "
            "set of synthetic handwriting in Datasets/Demo_Words", choices=("iam", "demo"), default="iam"),
    Setting("demo_words", "data", "with --dataset demo: how many word images to generate (100000 is about IAM's "
            "size, README: Training on IAM); with --preset line too, how many line images", "positive_int",
            default=3000, metavar="N"),
    Setting("data_dir", "data", "train on your own folder instead of --dataset: DIR/labels.csv with the columns "
            "image_path,label (paths relative to DIR; README: Train on your own handwriting), or an extracted folder "
            "in the IAM words layout (words.txt + words/a01/a01-000u/*.png), where DIR/splits/train.txt and "
            "valid.txt, when present, define the split, or an eScriptorium or Transkribus export: ALTO v4 or PAGE XML "
            "files beside their page images, each line cut out by its polygon", metavar="DIR"),
    Setting("train_csv", "data", "train on the images of this CSV (image_path,label; paths relative to its folder), "
            "instead of --data-dir or --dataset; give it again to train on several (lines and words, say)",
            "append", metavar="FILE"),
    Setting("val_csv", "data", "with a labels.csv folder, an export or --train-csv: validate on this CSV's images, instead of "
            "a random 10%% of the training rows (--seed)", metavar="FILE"),
    Setting("val_dir", "data", "with a --data-dir of ALTO or PAGE XML files: validate on this second export's lines, "
            "instead of whole documents making up 10%% of the lines (--seed)", metavar="DIR"),
    Setting("archive", "data", "with --dataset iam: an IAM_Words.zip or words.tgz you downloaded yourself, instead "
            "of downloading", metavar="PATH"),
    Setting("dataset_url", "data", "with --dataset iam: where to download IAM_Words.zip from", default=IAM_WORDS_URL),
    Setting("split", "data", "auto: aachen for IAM (--dataset iam, downloaded or --archive); for a folder, its "
            "splits/ lists when present, else random; random: 90/10 of the words with --seed; aachen: the "
            "writer-independent RWTH Aachen split of IAM (adds test.csv, scored at the end)",
            choices=("auto", "random", "aachen"), default="auto"),
    Setting("keep_er", "data", "keep IAM words whose segmentation is flagged 'er' (dropped by default: their "
            "boxes are wrong)", "flag", default=False),
    Setting("preset", "training", "default: this project's recipe for words; line: the same recipe for whole "
            "lines (48 pixels high, as wide as each line: README: Read a whole line); tutorial (or its old name, seed): "
            "the original tutorial's exact model and settings, to reproduce README: Results",
            choices=PRESETS + tuple(TUTORIAL_OLD_NAME), default="default", saved_as="preset", renamed=TUTORIAL_OLD_NAME),
    Setting("init_from", "training", "fine-tune: start from the weights of a model folder train.py wrote (or its "
            "model.keras), with its input size, architecture and settings, and configs.FINETUNE's learning rate; "
            "characters new to it get output units of their own", metavar="MODEL", saved_as="init_from"),
    Setting("architecture", "training", "model.py's model", choices=("columns", "tutorial"),
            default={"default": "columns", "line": "columns", "tutorial": "tutorial"}, saved_as="architecture", renamed=TUTORIAL_OLD_NAME),
    Setting("augmentation", "training", "training-image augmentation, see htr.data.pipeline.training_augmentors: "
            "photos: rich, and half the words made photo-like, so a model reads phone photos nearly as well as scans "
            "(README: Train on your own handwriting); lines: rich without rotation",
            choices=("rich", "lines", "photos", "tutorial"), default={"default": "photos", "line": "lines", "tutorial": "tutorial"},
            saved_as="augmentation", renamed=TUTORIAL_OLD_NAME),
    Setting("crop", "training", "how each image is cut before resizing, in training and in the exported model: "
            "columns, to its ink at the left and right; band, also above and below to its writing band, which gives "
            "loosely cropped photos a scan's proportions; none: as it is",
            choices=("columns", "band", "none"), default={"default": "band", "line": "columns", "tutorial": "columns"},
            saved_as="crop", before="columns"),
    Setting("dropout", "training", "share of activations dropped in training after each residual block and the "
            "BiLSTM", "fraction", default={"default": 0.1, "line": 0.1, "tutorial": 0.2}, saved_as="dropout"),
    Setting("ctc_shortcut", "training", "train a second, CTC-only output straight off the CNN (model.py) with this "
            "weight on its loss; 0: none", "non_negative_float", default={"default": 0.1, "line": 0.1, "tutorial": 0.0},
            saved_as="ctc_shortcut", before=0.0, metavar="WEIGHT"),
    Setting("lr_schedule", "training", "cosine: warm-up, then cosine decay to 0 at the end of --minutes or "
            "--epochs; plateau: x0.9 after 10 epochs without progress", choices=("cosine", "plateau"),
            default={"default": "cosine", "line": "cosine", "tutorial": "plateau"}, saved_as="lr_schedule"),
    Setting("warmup", "training", "with the cosine schedule: the share of training spent raising the learning rate "
            "from 0 to its peak", "fraction", default={"default": 0.03, "line": 0.03, "tutorial": 0.03},
            saved_as="warmup", before=0.03, metavar="FRACTION"),
    Setting("freeze_cnn", "training", "with the cosine schedule: train only the BiLSTM and the outputs for this "
            "share of training, then everything", "fraction", default={"default": 0.0, "line": 0.0, "tutorial": 0.0},
            saved_as="freeze_cnn", before=0.0, metavar="FRACTION"),
    Setting("keep_aspect_ratio", "training", "yes: scale words to fit the input and pad with white; no: stretch "
            "them to it", "yes_no", default={"default": False, "line": True, "tutorial": False}, saved_as="keep_aspect_ratio"),
    Setting("epochs", "training", "most epochs to train; early stopping may end sooner (default: the preset's: for "
            "default, enough epochs for {default.train_samples:,} training images and at least "
            "{default.min_epochs}; {tutorial.train_epochs} for tutorial)", "positive_int",
            default={"default": None, "line": None, "tutorial": 1000}, saved_as="train_epochs", anew=True),
    Setting("train_samples", None, "", default={"default": 500_000, "line": 100_000}, saved_as="train_samples"),
    Setting("min_epochs", None, "", default={"default": 20, "line": 20}, saved_as="min_epochs"),  # no flags
    # The model's input: a word is stretched to 32x128; a line is scaled to 48 pixels high, its width
    # following it (None), padded with paper to the widest of each batch.
    Setting("height", None, "", default={"default": 32, "tutorial": 32, "line": 48}, saved_as="height"),
    Setting("width", None, "", default={"default": 128, "tutorial": 128, "line": None}, saved_as="width"),
    Setting("minutes", "training", "stop training after this many minutes of wall-clock time, then export the best "
            "epoch as usual", "positive_float", anew=True),
    Setting("batch_size", "training", "images per replica (one replica per GPU, or per worker without GPUs) in each "
            "step; a step trains on the global batch of batch-size x replicas images", "positive_int",
            default={"default": 16, "line": 8, "tutorial": 16}, saved_as="batch_size"),  # 16: a lower CER than 32 in the same time
    Setting("learning_rate", "training", "Adam's (the schedule's peak), used as given for any number of replicas: "
            "it is not scaled with the global batch (README says when to raise it)", "positive_float",
            default={"default": 0.003, "line": 0.003, "tutorial": 0.0005}, saved_as="learning_rate"),
    Setting("weight_decay", "training", "decoupled weight decay (AdamW): each step shrinks every weight by this x "
            "the learning rate; 0: plain Adam", "non_negative_float", default={"default": 0.1, "line": 0.1, "tutorial": 0.0},
            saved_as="weight_decay", before=0.0),
    Setting("model_dir", "training", "where to write the model, logs and CSVs (default: a new "
            "Models/03_handwriting_recognition/<time> folder)", metavar="DIR", saved_as="model_path"),
    Setting("seed", "training", "for the split, weights and augmentation", "int", default=42),
    Setting("resume", "training", "continue an interrupted run from DIR's last checkpoint, with its data split and "
            "settings", metavar="DIR"),
    Setting("strategy", "scale", "auto: mirrored when this machine has more than one GPU, else default; "
            "default: one device; mirrored: a replica on every GPU of this machine "
            "(tf.distribute.MirroredStrategy); multiworker: a replica on every worker listed in the TF_CONFIG "
            "environment variable (MultiWorkerMirroredStrategy), run the same command on each; only the chief "
            "writes --model-dir", choices=("auto", "default", "mirrored", "multiworker"), default="auto", anew=True),
    Setting("mixed_precision", "scale", "compute in 16 bits, keep float32 weights: float16 on GPUs with tensor "
            "cores, bfloat16 on recent GPUs and CPUs with bfloat16 instructions; auto: bfloat16 where the hardware "
            "has it, else off; the exported ONNX model is float32", choices=("auto", "off", "float16", "bfloat16"),
            default={"default": "auto", "line": "auto", "tutorial": "off"}, saved_as="mixed_precision"),
    Setting("workers", "scale", "processes that prepare the training batches (read, augment, resize) while the "
            "model trains; the batches are the same for any number (default: all cores but one with a GPU, one per "
            "8 cores without)", "positive_int", anew=True),
    Setting("xla", "scale", "compile with XLA what it can of the training step (auto-clustering: the convolutions, "
            "normalisation and dense layers; the cuDNN LSTM and the CER metric's CTC decoder, which XLA cannot "
            "compile, stay TensorFlow's); auto: on with GPUs, off on CPUs, where it made training slower",
            choices=("auto", "on", "off"), default="auto", anew=True),
    Setting("peer_timeout", "scale", "with --strategy multiworker: a worker that makes no progress for this long "
            "(another worker died or hangs) exits with an error instead of waiting forever; more than the slowest "
            "step plus one validation pass", "positive_float", default=600, anew=True, metavar="SECONDS"),
]

# train.py --init-from MODEL: the starting model's settings (input size, architecture, augmentation,
# ...) with these on top (README: Train on your own handwriting).
FINETUNE = {"learning_rate": 0.003, "lr_schedule": "cosine", "mixed_precision": "auto"}  # auto: as a new run


def preset_values(preset):
    return {s.saved_as: s.default[preset] for s in SETTINGS if isinstance(s.default, dict) and preset in s.default}


class ModelConfigs(BaseModelConfigs):
    def __init__(self, preset="default"):
        super().__init__()
        # Each run gets its own folder, so earlier models are never overwritten.
        self.model_path = os.path.join("Models", "03_handwriting_recognition", datetime.now().strftime("%Y%m%d%H%M"))
        self.preset = preset
        self.vocab, self.max_text_length = "", 0  # filled from the training data
        self.__dict__.update(preset_values(preset))  # batch_size is per replica (per GPU): see train.py --help


def load_configs(configs_path):
    """A run's configs.yaml, as today's version names it: a setting the file predates gets the
    value that run trained with (`before`), an old name today's (`renamed`)."""
    with open(configs_path, encoding="utf-8") as f:
        saved = yaml.safe_load(f)
    for s in SETTINGS:
        if s.saved_as and s.saved_as not in saved and s.before is not None:
            saved[s.saved_as] = s.before
        if s.renamed and saved.get(s.saved_as) in s.renamed:
            saved[s.saved_as] = s.renamed[saved[s.saved_as]]
    configs = ModelConfigs()
    configs.__dict__.update(saved)
    return configs
