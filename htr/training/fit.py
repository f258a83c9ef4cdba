"""Training itself, for train.py: the callbacks around Keras' fit(), and what to do when fit()
is cut short (Ctrl-C, a NaN loss, a full disk, a lost peer)."""
import os
import re
import sys

import numpy as np
import tensorflow as tf
from keras.callbacks import CSVLogger, EarlyStopping, ReduceLROnPlateau, TensorBoard
from mltu.tensorflow.callbacks import TrainLogger

from htr.training.callbacks import (BestModelCheckpoint, Float32Validation, LossBecameNaN, ResumableCheckpoint,
                                    RunTimeEstimate, StopOnSignalOrNaN, TrainingInterrupted, TrainingSpeed,
                                    TrainingTimeLimit, ValidationPreview, WarmupCosineSchedule)
from htr.training.distribute import PeerWatchdog, stop_worker
from htr.training.finetune import FrozenCNN
from model import reader_of

# mltu's TrainLogger sets the root logger to INFO, which would let tf.distribute log every all-reduce.
tf.get_logger().setLevel("WARNING")


def schedule_callbacks(configs, minutes, resume_state):
    """The learning-rate schedule's callbacks, and the counters a checkpoint keeps of them so
    --resume goes on where the run stopped. Everything watches val_CER, lower is better, hence
    mode="min" (Keras 3 requires it)."""
    if configs.lr_schedule == "cosine":
        # The schedule decides the end; no early stopping, which would cut it short.
        schedule = WarmupCosineSchedule(configs.learning_rate, configs.train_epochs, minutes,
                                        progress=resume_state["lr_schedule"]["progress"] if resume_state else 0.0,
                                        warmup=configs.warmup)
        counters = {"lr_schedule": (schedule, ["progress"])}
        return [schedule] + ([FrozenCNN(schedule, configs.freeze_cnn)] if configs.freeze_cnn else []), counters
    early_stopping = EarlyStopping(monitor="val_CER", patience=20, mode="min", verbose=1)
    reduce_lr = ReduceLROnPlateau(monitor="val_CER", factor=0.9, min_delta=1e-10, patience=10, mode="min", verbose=1)
    counters = {"early_stopping": (early_stopping, ["wait", "best", "best_epoch"]),
                "reduce_lr": (reduce_lr, ["wait", "best", "cooldown_counter"])}
    return [early_stopping, reduce_lr], counters


def training_callbacks(configs, args, splits, val_data, float32_model, resume_state, replicas):
    """What runs around fit(). Returns the list, and the two callbacks main() reads afterwards."""
    best_checkpoint = BestModelCheckpoint(os.path.join(configs.model_path, "model.keras"),
                                          initial_best=resume_state and resume_state["best_val_CER"])
    callbacks, counters = schedule_callbacks(configs, args.minutes, resume_state)
    last_checkpoint = ResumableCheckpoint(configs.model_path, best_checkpoint, counters, resume_state)
    speed = TrainingSpeed(configs.batch_size * replicas, len(splits["train"]))
    # A few validation words, read after every epoch and shown in TensorBoard.
    preview_images = val_data[0][0]
    preview_labels = [label for _, label in splits["val"][:8]]
    callbacks += [
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


def fit(model, train_data, val_data, callbacks, last_checkpoint, configs, args, resume_state):
    """fit(), and what to do when it is cut short. Returns the reason training stopped early
    (TrainingInterrupted), or None."""
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
