"""Training callbacks that Keras and mltu do not provide: never lose a run, never save garbage."""
import math
import os
import signal
import time

import keras
import numpy as np
import tensorflow as tf
from keras.callbacks import ModelCheckpoint

from htr.decoding import greedy_decode
from htr.files import replacing, write_json
from htr.preview import draw_preview


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


class WarmupCosineSchedule(keras.callbacks.Callback):
    """The learning rate rises linearly from 0 to `peak` over the first `warmup` of training, then
    follows a cosine down to 0 at the end. The end is whichever comes first of `epochs` and
    `minutes`: progress is the larger of the two fractions spent, so "train for 20 minutes"
    gets a whole schedule, and the best weights usually come from the last, low-rate epochs.

    `progress` is saved by ResumableCheckpoint; a resumed run spends the rest of the schedule
    in its own --minutes."""

    def __init__(self, peak, epochs, minutes=None, progress=0.0, warmup=0.03):
        super().__init__()
        self.peak, self.epochs, self.seconds, self.warmup = peak, epochs, minutes and minutes * 60, warmup
        self.progress = self.start_progress = progress

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        by_epochs = (self.epoch + batch / self.params["steps"]) / self.epochs
        by_time = 0.0
        if self.seconds:
            spent = (time.monotonic() - self.start) / self.seconds
            by_time = self.start_progress + (1 - self.start_progress) * spent
        self.progress = min(1.0, max(by_epochs, by_time))
        if self.progress < self.warmup:
            rate = self.peak * self.progress / self.warmup
        else:
            rate = self.peak * 0.5 * (1 + math.cos(math.pi * (self.progress - self.warmup) / (1 - self.warmup)))
        self.model.optimizer.learning_rate = rate

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


class Float32Validation(keras.callbacks.Callback):
    """Validates after every epoch on a float32 copy of the model being trained, and adds its
    val_loss, val_CER and val_WER to the epoch's logs: put it first in the callback list, so the
    checkpoint, schedule and loggers after it read those figures (fit() itself validates nothing).

    Why: the ONNX export is float32, and under bfloat16 mixed precision the same weights read
    worse, unevenly from epoch to epoch (a 20-minute gw_words run: its last epoch 12.5% average
    CER in bfloat16, 7.3% in float32). Choosing the best epoch on the bfloat16 figure kept an
    earlier, worse one. In float32 training the copy computes what the model does."""

    def __init__(self, float32_model, val_data):
        super().__init__()
        self.float32_model, self.val_data = float32_model, val_data

    def on_epoch_end(self, epoch, logs=None):
        self.float32_model.set_weights(self.model.get_weights())
        results = self.float32_model.evaluate(self.val_data, verbose=0, return_dict=True)
        if logs is not None:
            logs.update({f"val_{name}": value for name, value in results.items()})


class TrainingSpeed(keras.callbacks.Callback):
    """Counts the images trained on and the wall-clock time of the whole fit(), validation and
    callbacks included: the samples/s a user actually gets (train.py writes it to training.json)."""

    def __init__(self, batch_size, epoch_size):
        super().__init__()
        self.batch_size, self.epoch_size = batch_size, epoch_size
        self.samples, self.seconds = 0, 0.0

    def on_train_begin(self, logs=None):
        self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        self.samples += min(self.batch_size, self.epoch_size - batch * self.batch_size)  # the last batch is short
        self.seconds = time.monotonic() - self.start

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.monotonic() - self.start


class RunTimeEstimate(keras.callbacks.Callback):
    """After the first epoch, prints how long the whole run will take at that pace (the first
    epoch also traces the model, so it is an upper bound). A default run on IAM takes many hours
    on a CPU: better to know after one epoch than after a night."""

    def __init__(self, epochs, minutes=None, on_gpu=False):
        super().__init__()
        self.epochs, self.minutes, self.on_gpu = epochs, minutes, on_gpu
        self.printed = False

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.first_epoch = time.monotonic(), epoch

    def on_epoch_end(self, epoch, logs=None):
        if not self.printed and epoch + 1 < self.epochs:
            self.printed = True
            print(run_time_estimate(time.monotonic() - self.start, self.epochs - self.first_epoch, self.minutes,
                                    self.on_gpu))


def run_time_estimate(epoch_seconds, epochs, minutes=None, on_gpu=False):
    """The line RunTimeEstimate prints: `epochs` epochs of `epoch_seconds`, or --minutes if sooner."""
    hours = epoch_seconds * epochs / 3600
    line = (f"The first epoch took {format_hours(epoch_seconds / 3600)}: the whole run, {epochs} epochs, "
            f"takes about {format_hours(hours)}")
    if minutes and minutes / 60 < hours:
        return line + f"; --minutes {minutes:g} ends it sooner."
    if hours > 2 and not on_gpu:
        return (line + " on this CPU. To train for a set time with the whole learning-rate schedule, give "
                "--minutes (e.g. --minutes 120), or train on a GPU.")
    return line + "."


def format_hours(hours):
    if hours < 1 / 60:
        return f"{hours * 3600:.0f} seconds"
    return f"{hours * 60:.0f} minutes" if hours < 1 else f"{hours:.1f} hours"


def save_keras_model_atomically(model, path):
    with replacing(path, ".keras") as tmp_path:  # Keras insists on the .keras ending
        model.save(tmp_path)


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
    best val_CER and the counters of the early stopping and learning-rate schedule (last.json).

    `counters`: {name: (callback, [attribute, ...])}. Put this callback after those in the
    callback list: on a resumed run their on_train_begin resets them, and this one's then puts
    the saved values back."""

    def __init__(self, model_dir, best_checkpoint, counters, resume_state=None):
        super().__init__()
        self.model_path = os.path.join(model_dir, "last.keras")
        self.state_path = os.path.join(model_dir, "last.json")
        self.best_checkpoint, self.counters = best_checkpoint, counters
        self.resume_state = resume_state
        self.epoch = 0

    def on_train_begin(self, logs=None):
        if self.resume_state:
            for name, (callback, _) in self.counters.items():
                for attribute, value in self.resume_state[name].items():
                    setattr(callback, attribute, value)

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        self.save(next_epoch=epoch + 1)

    def save(self, next_epoch):
        """Also called by train.py when a run is interrupted mid-epoch: that epoch is redone."""
        save_keras_model_atomically(self.model, self.model_path)
        write_json({
            "next_epoch": next_epoch,
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "best_val_CER": self.best_checkpoint.best,
            **{name: {attribute: getattr(callback, attribute) for attribute in attributes}
               for name, (callback, attributes) in self.counters.items()},
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


def markdown_code(text):
    return "`" + text.replace("|", "\\|") + "`" if text else "(nothing)"


class ValidationPreview(keras.callbacks.Callback):
    """Every `every_epochs` epochs, reads a fixed handful of validation images and logs the grid
    (image) and a label/prediction table (text) to TensorBoard, in log_dir/preview, at the same
    epoch steps as Keras' TensorBoard curves.

    images: uint8 (height, width, 3) BGR, already at the model's input size; labels: their strings.
    reader: the model that reads them, by default the one being trained; train.py passes the
    float32 copy that Float32Validation has just given the epoch's weights, so the preview shows
    what the exported model would read."""

    def __init__(self, log_dir, images, labels, vocab, every_epochs=1, reader=None):
        super().__init__()
        self.log_dir = os.path.join(log_dir, "preview")
        self.images, self.labels, self.vocab = np.asarray(images, np.uint8), list(labels), vocab
        self.every_epochs, self.reader = every_epochs, reader

    def on_train_begin(self, logs=None):
        self.writer = tf.summary.create_file_writer(self.log_dir)
        if self.reader is None:  # the model being trained, without its CTC shortcut output if it has one
            self.reader = keras.Model(self.model.input, self.model.get_layer("output").output)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every_epochs:
            return
        probabilities = keras.ops.convert_to_numpy(self.reader.predict_on_batch(self.images.astype(np.float32)))
        predictions = greedy_decode(probabilities, self.vocab)
        grid = draw_preview(self.images, self.labels, predictions)
        table = ["| label | prediction | |", "| --- | --- | --- |"]  # Markdown, which TensorBoard renders
        table += [f"| {markdown_code(label)} | {markdown_code(text)} | {'' if text == label else 'wrong'} |"
                  for label, text in zip(self.labels, predictions)]
        with self.writer.as_default(step=epoch):
            tf.summary.image("validation preview", grid[np.newaxis, :, :, ::-1])  # RGB for TensorBoard
            tf.summary.text("validation predictions", "\n".join(table))
        self.writer.flush()

    def on_train_end(self, logs=None):
        self.writer.close()
