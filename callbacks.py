"""Training callbacks that Keras and mltu do not provide: never lose a run, never save garbage."""
import json
import math
import os
import signal
import time

import keras
from keras.callbacks import ModelCheckpoint


class TrainingTimeLimit(keras.callbacks.Callback):
    """Stops training once `minutes` of wall-clock time are spent ("train for two hours, then
    give me a model"). It stops after the current batch; that epoch is still validated, and
    train.py's normal end (best checkpoint, ONNX export) follows."""

    def __init__(self, minutes):
        super().__init__()
        self.seconds = minutes * 60

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.start > self.seconds and not self.model.stop_training:
            print(f"\nTime limit of {self.seconds / 60:g} minutes reached: stopping after this batch.")
            self.model.stop_training = True


def save_keras_model_atomically(model, path):
    """model.save() to a temporary name, then rename: a kill or a full disk mid-write leaves
    the previous file intact instead of a truncated one."""
    tmp_path = path[: -len(".keras")] + ".tmp.keras"  # Keras insists on the .keras ending
    try:
        model.save(tmp_path)
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def write_json_atomically(data, path):
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2, default=float)  # default: NumPy numbers
    os.replace(path + ".tmp", path)


class BestModelCheckpoint(ModelCheckpoint):
    """Keras' ModelCheckpoint (save_best_only on val_CER), but written atomically."""

    def __init__(self, filepath, initial_best=None):
        super().__init__(filepath, monitor="val_CER", mode="min", save_best_only=True, initial_value_threshold=initial_best)

    def _save_model(self, epoch, batch, logs):
        # Overrides the one method of ModelCheckpoint that writes (Keras 3.15).
        previous_best = self.best
        if self._should_save_model(epoch, batch, logs, self.filepath):
            save_keras_model_atomically(self.model, self.filepath)
            previous = "none" if previous_best is None else f"{previous_best:.5f}"
            print(f"\nEpoch {epoch + 1}: val_CER improved from {previous} to {self.best:.5f}, saved {self.filepath}")
        else:
            print(f"\nEpoch {epoch + 1}: val_CER did not improve from {self.best:.5f}")


class ResumableCheckpoint(keras.callbacks.Callback):
    """After every epoch, everything `train.py --resume` needs to go on as if never stopped:
    the model with its optimizer state (last.keras) and the epoch number, learning rate,
    best val_CER and the early-stopping and learning-rate-schedule counters (last.json).

    Put it after EarlyStopping and ReduceLROnPlateau in the callback list: on a resumed run
    their on_train_begin resets their counters, and this one's then puts them back."""

    def __init__(self, model_dir, early_stopping, reduce_lr, best_checkpoint, resume_state=None):
        super().__init__()
        self.model_path = os.path.join(model_dir, "last.keras")
        self.state_path = os.path.join(model_dir, "last.json")
        self.early_stopping, self.reduce_lr, self.best_checkpoint = early_stopping, reduce_lr, best_checkpoint
        self.resume_state = resume_state
        self.epoch = 0

    def on_train_begin(self, logs=None):
        if self.resume_state:
            for callback, key in ((self.early_stopping, "early_stopping"), (self.reduce_lr, "reduce_lr")):
                for name, value in self.resume_state[key].items():
                    setattr(callback, name, value)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.save(next_epoch=epoch + 1)

    def save(self, next_epoch):
        """Also called by train.py when a run is interrupted mid-epoch: that epoch is redone."""
        save_keras_model_atomically(self.model, self.model_path)
        write_json_atomically({
            "next_epoch": next_epoch,
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "best_val_CER": self.best_checkpoint.best,
            "early_stopping": {"wait": self.early_stopping.wait, "best": self.early_stopping.best,
                               "best_epoch": self.early_stopping.best_epoch},
            "reduce_lr": {"wait": self.reduce_lr.wait, "best": self.reduce_lr.best,
                          "cooldown_counter": self.reduce_lr.cooldown_counter},
        }, self.state_path)


class TrainingInterrupted(Exception):
    pass


class LossBecameNaN(TrainingInterrupted):
    pass


class StopOnSignalOrNaN(keras.callbacks.Callback):
    """Ctrl-C (SIGINT) or SIGTERM, and a loss that is NaN or infinite, end training right
    after the current batch by raising TrainingInterrupted, before anything is saved from a
    broken model; train.py then saves what can be saved and exits non-zero. A second
    Ctrl-C stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def on_train_begin(self, logs=None):
        self.received = None
        self.previous_handlers = {s: signal.signal(s, self.handle_signal) for s in self.SIGNALS}

    def handle_signal(self, signum, frame):
        self.received = signal.Signals(signum).name
        self.restore_signal_handlers()
        print(f"\n{self.received} received: stopping after this batch (again to stop at once).")

    def restore_signal_handlers(self):
        for s, handler in getattr(self, "previous_handlers", {}).items():
            signal.signal(s, handler)
        self.previous_handlers = {}

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.restore_signal_handlers()
            raise LossBecameNaN(f"the training loss became {float(loss)} (batch {batch + 1}); "
                                "try a lower --learning-rate")
        if self.received:
            raise TrainingInterrupted(f"{self.received} received")

    def on_train_end(self, logs=None):
        self.restore_signal_handlers()
