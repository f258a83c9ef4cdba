"""All training settings in one visible place; train.py's flags override them.

Two presets: "default" (this project's recipe) and "tutorial" (the original tutorial's exact
settings and model, kept so anyone can reproduce the comparison in README: Results).
"""
import os
from datetime import datetime

from mltu.configs import BaseModelConfigs

PRESETS = {
    "default": {
        "architecture": "columns",      # model.py: strided stem, one step per feature-map column, BiLSTM
        "keep_aspect_ratio": False,     # stretch each word to the input size
        "augmentation": "rich",         # train.py: the tutorial's + slant, blur, noise; milder rotation
        "crop": "columns",              # each word cut to its ink at the left and right (band: above and below too)
        "dropout": 0.1,                 # after every residual block and the BiLSTM
        "ctc_shortcut": 0.1,            # model.py's CTC shortcut, its loss x0.1
        "batch_size": 16,               # more, smaller steps: a lower CER in the same minutes than 32
        "learning_rate": 0.003,         # the peak of the warm-up + cosine schedule
        "weight_decay": 0.1,            # AdamW: every step shrinks each weight by weight_decay x learning rate
        "lr_schedule": "cosine",        # over --minutes (or --epochs): reaches ~0 at the end
        "warmup": 0.03,                 # the share of the cosine schedule spent rising to the peak
        "freeze_cnn": 0.0,              # the share of the schedule that trains only the BiLSTM and outputs
        "mixed_precision": "auto",      # bfloat16 where the CPU/GPU computes it natively, else off (float32)
        # A run's length when --epochs does not set it: epochs enough for train_samples training
        # images, and at least min_epochs. The recipe was tuned at 200 epochs of gw_words' 2,433
        # words (~500,000 images; README: How fast and how good), which these keep. A larger set
        # needs fewer passes, each being more varied: IAM's 50,000-87,000 training words (Aachen or
        # random split) get 20 epochs, 1-1.7 million images, instead of 200 epochs (10-17 million),
        # which would take days on a CPU. train.py prints the whole run's estimated time after the
        # first epoch; --minutes fits the schedule into a time budget instead.
        "train_epochs": None,
        "train_samples": 500_000,
        "min_epochs": 20,
    },
    "tutorial": {
        "architecture": "tutorial",
        "keep_aspect_ratio": False,
        "augmentation": "tutorial",
        "crop": "columns",
        "dropout": 0.2,
        "ctc_shortcut": 0.0,
        "batch_size": 16,
        "learning_rate": 0.0005,
        "weight_decay": 0.0,            # plain Adam
        "lr_schedule": "plateau",       # ReduceLROnPlateau x0.9 after 10 epochs without progress
        "warmup": 0.03,                 # with --lr-schedule cosine
        "freeze_cnn": 0.0,
        "mixed_precision": "off",
        "train_epochs": 1000,
    },
}

# train.py --init-from MODEL: the starting model's settings (input size, architecture, augmentation,
# ...) with these on top (README: Train on your own handwriting).
FINETUNE = {
    "learning_rate": 0.003,
    "lr_schedule": "cosine",
    "mixed_precision": "auto",          # as for a new run: what this machine computes natively
}


class ModelConfigs(BaseModelConfigs):
    def __init__(self, preset="default"):
        super().__init__()
        # Each run gets its own folder, so earlier models are never overwritten.
        self.model_path = os.path.join("Models", "03_handwriting_recognition", datetime.now().strftime("%Y%m%d%H%M"))
        self.preset = preset
        self.vocab = ""  # filled from the training data
        self.height = 32
        self.width = 128
        self.max_text_length = 0  # filled from the training data
        self.__dict__.update(PRESETS[preset])  # batch_size is per replica (per GPU): see train.py --help
