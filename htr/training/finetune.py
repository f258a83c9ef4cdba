"""Fine-tuning (train.py --init-from MODEL): start from the weights of a model train.py wrote.

The new run takes the starting model's input size, architecture and settings (configs.yaml),
with configs.FINETUNE on top. Its vocabulary is the starting model's, in the same order, with
the characters only the new data has added after them: every old character keeps its output
unit, so the model keeps reading it, and each new character gets a unit of its own. The CTC
blank is always the last unit, so it moves to the end.
"""
import os

import keras
import numpy as np
import yaml

from configs import FINETUNE, ModelConfigs, load_configs
from model import build_model, reader_of


class StartingModelError(Exception):
    """--init-from names something train.py cannot start from; str(e) says why, on one line."""


def starting_configs(path):
    """The configs of the model folder `path` (or of the folder holding the model.keras `path`),
    with the file of weights to start from in .init_weights."""
    folder, weights = (path, os.path.join(path, "model.keras")) if os.path.isdir(path) else (os.path.dirname(path), path)
    configs_path = os.path.join(folder, "configs.yaml")
    if not (os.path.isfile(weights) and weights.endswith(".keras") and os.path.isfile(configs_path)):
        raise StartingModelError(f"--init-from {path}: not a model folder written by train.py (it needs model.keras "
                                 "and configs.yaml): pass such a folder, or the model.keras in one")
    try:
        configs = load_configs(configs_path)  # upgraded, if an older version wrote it
        assert configs.vocab and configs.architecture and configs.height and (configs.width is None or configs.width > 0)
    except (OSError, yaml.YAMLError, TypeError, ValueError, AttributeError, AssertionError):
        raise StartingModelError(f"--init-from {path}: {configs_path} is not a configs.yaml written by train.py") from None
    configs.init_weights = weights
    return configs


def finetune_configs(path):
    """The new run's configs: the starting model's, configs.FINETUNE on top, a new model folder."""
    configs = starting_configs(path)
    configs.__dict__.update(FINETUNE)
    if getattr(configs, "train_samples", None):
        # Its number of epochs was worked out for its own data (configs.py): the new data gets its own.
        configs.train_epochs = None
    configs.init_from = os.path.abspath(path)
    configs.model_path = ModelConfigs().model_path  # a new folder, never the starting model's
    return configs


def load_starting_weights(model, configs):
    """Puts the weights of configs.init_weights (the starting model) into `model`, built from the
    same configs but for configs.vocab, which extends the starting model's."""
    starting = starting_configs(configs.init_weights)
    source = build_model(starting)
    try:
        source.load_weights(configs.init_weights)
    except Exception as e:  # Keras raises a variety of errors for a damaged or mismatched file
        raise StartingModelError(f"--init-from: cannot load {configs.init_weights} "
                                 f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    old_units, new_units = len(starting.vocab), len(configs.vocab)
    assert configs.vocab.startswith(starting.vocab)
    pairs = list(zip(reader_of(source).layers, reader_of(model).layers))
    if "shortcut" in [layer.name for layer in source.layers] and "shortcut" in [layer.name for layer in model.layers]:
        pairs.append((source.get_layer("shortcut"), model.get_layer("shortcut")))
    for old_layer, new_layer in pairs:
        weights = old_layer.get_weights()
        if new_layer.name in ("output", "shortcut"):
            weights = grow_output_units(weights, old_units, new_units)
        new_layer.set_weights(weights)


def grow_output_units(weights, old_units, new_units):
    """[kernel, bias] of a layer that outputs old_units characters + the blank (last axis) ->
    new_units characters + the blank. Old characters keep their units and the blank its weights;
    a new character starts with a zero kernel and the lowest bias of the old characters, so at
    first it is never the most likely symbol (the model reads as before) and it learns from the
    gradient of its first occurrences."""
    kernel, bias = weights
    grown_kernel = np.zeros(kernel.shape[:-1] + (new_units + 1,), kernel.dtype)
    grown_bias = np.full(new_units + 1, bias[:old_units].min(), bias.dtype)
    for grown, old in ((grown_kernel, kernel), (grown_bias, bias)):
        grown[..., :old_units] = old[..., :old_units]
        grown[..., -1] = old[..., -1]
    return [grown_kernel, grown_bias]


class FrozenCNN(keras.callbacks.Callback):
    """Trains only the layers after the CNN (the BiLSTM, the outputs, the CTC shortcut) until the
    schedule's progress reaches `until`, then the whole model. Put it after the schedule."""

    def __init__(self, schedule, until):
        super().__init__()
        self.schedule, self.until = schedule, until

    def on_train_begin(self, logs=None):
        names = [layer.name for layer in self.model.layers]
        self.cnn = self.model.layers[:names.index("sequence") + 1]
        if not self.model.optimizer.built:  # on every weight, so it can train the CNN's later
            with self.model.distribute_strategy.scope():
                self.model.optimizer.build(self.model.trainable_variables)
        self.set_frozen(self.schedule.progress < self.until)

    def on_train_batch_begin(self, batch, logs=None):
        if self.frozen and self.schedule.progress >= self.until:
            print(f"\nTraining the CNN too from now on ({self.until:g} of the schedule)")
            self.set_frozen(False)

    def set_frozen(self, frozen):
        self.frozen = frozen
        for layer in self.cnn:
            layer.trainable = not frozen
        self.model.make_train_function(force=True)  # Keras traces trainable_variables into the training step
