"""Word recognizers: a residual CNN reads the word image into a sequence of feature vectors, a
BiLSTM reads that sequence, and a softmax gives vocab + 1 (the CTC blank) probabilities per step.

Two architectures (configs.py picks one): the original tutorial's, and "columns", this
project's default, which spends its multiply-adds where they pay (docs/experiments.md)."""
import warnings

import keras
from keras import layers, ops
from keras.models import Model
from mltu.tensorflow.model_utils import residual_block

from htr.training.ctc import CTCLoss, CWERMetric

# mltu's residual_block still passes LeakyReLU's old `alpha` argument; it works the same.
warnings.filterwarnings("ignore", message="Argument `alpha` is deprecated")


def build_model(configs):
    """The model configs.architecture names, for (height, width, 3) BGR images of 0-255 (width None:
    any width, a line model's, columns architecture only); with a
    second output, the CTC shortcut, when configs.ctc_shortcut > 0 (reader_of drops it)."""
    architecture = {"tutorial": tutorial_model, "columns": columns_model}[configs.architecture]
    reader = architecture(input_dim=(configs.height, configs.width, 3), output_dim=len(configs.vocab),
                          dropout=configs.dropout)
    return with_ctc_shortcut(reader) if configs.ctc_shortcut else reader


def compile_model(configs):
    """The model, ready to train with CTC: the reader's loss, plus the shortcut's at its weight."""
    model = build_model(configs)
    padding_token = len(configs.vocab)
    loss, loss_weights, metrics = CTCLoss(padding_token), None, [CWERMetric(padding_token)]
    if configs.ctc_shortcut:  # CER and WER are the reader's
        loss = {"output": loss, "shortcut": CTCLoss(padding_token)}
        loss_weights = {"output": 1.0, "shortcut": configs.ctc_shortcut}
        metrics = {"output": metrics}
    model.compile(
        # With weight_decay > 0 this is AdamW (Loshchilov & Hutter 2019): each step also pulls every
        # weight towards 0 by weight_decay x the learning rate, a regulariser; 0 gives plain Adam.
        optimizer=keras.optimizers.Adam(learning_rate=configs.learning_rate, weight_decay=configs.weight_decay or None),
        loss=loss,
        loss_weights=loss_weights,
        # Weighted: the padding of a last validation batch under several replicas has weight 0 (distribute.py).
        weighted_metrics=metrics,
    )
    return model


def tutorial_model(input_dim, output_dim, dropout, activation="leaky_relu"):
    """The original tutorial's model, unchanged: 9 residual blocks, the first two at full resolution,
    then the (height/8, width/8) feature map flattened row by row into one sequence."""
    inputs = layers.Input(shape=input_dim, name="input")

    # Scale pixels inside the model, so the exported ONNX model takes raw 0-255 images.
    # (The tutorial used a Lambda layer; Rescaling does the same and serialises safely in Keras 3.)
    x = layers.Rescaling(1.0 / 255)(inputs)

    x = residual_block(x, 16, activation=activation, skip_conv=True, strides=1, dropout=dropout)
    x = residual_block(x, 16, activation=activation, skip_conv=True, strides=2, dropout=dropout)
    x = residual_block(x, 16, activation=activation, skip_conv=False, strides=1, dropout=dropout)
    x = residual_block(x, 32, activation=activation, skip_conv=True, strides=2, dropout=dropout)
    x = residual_block(x, 32, activation=activation, skip_conv=False, strides=1, dropout=dropout)
    x = residual_block(x, 64, activation=activation, skip_conv=True, strides=2, dropout=dropout)
    x = residual_block(x, 64, activation=activation, skip_conv=True, strides=1, dropout=dropout)
    x = residual_block(x, 64, activation=activation, skip_conv=False, strides=1, dropout=dropout)
    x = residual_block(x, 64, activation=activation, skip_conv=False, strides=1, dropout=dropout)

    # (height/8, width/8, 64) -> a sequence of height/8 * width/8 steps for CTC.
    x = layers.Reshape((x.shape[-3] * x.shape[-2], x.shape[-1]), name="sequence")(x)
    return recurrent_head(inputs, x, output_dim, dropout)


@keras.saving.register_keras_serializable(package="htr")  # so keras.models.load_model finds it
class PaperNormalization(layers.Layer):
    """Makes a photographed word look like a scan, inside the model, so every ONNX consumer gets
    it: BGR 0-255 in, grey 0-255 out (in 3 equal channels, the shape the layers after it take),
    paper white and the darkest ink black, whatever the paper's tint, the light on it, or the
    ink's colour and strength.

    The paper's brightness at each pixel is the brightest grey within `window` pixels (a max
    filter reaches past strokes to the paper beside them), smoothed; dividing by it levels out
    tint, uneven light and shadows. Then each image's ink is stretched so its darkest strokes
    (averaged over 3x3 pixels, so single noise pixels do not count) become black. A clean scan
    comes out nearly unchanged."""

    def __init__(self, window=15, **kwargs):
        super().__init__(**kwargs)
        self.window = window

    def call(self, images):
        grey = ops.mean(ops.cast(images, "float32"), axis=-1, keepdims=True)
        paper = ops.max_pool(grey, (1, self.window), strides=1, padding="same")  # separable: the same, faster
        paper = ops.max_pool(paper, (self.window, 1), strides=1, padding="same")
        paper = ops.average_pool(paper, (self.window, self.window), strides=1, padding="same")
        ink = ops.relu(1 - grey / ops.maximum(paper, 1.0))  # 0 on paper, 1 for black ink on white
        darkest = ops.max(ops.average_pool(ink, (3, 3), strides=1, padding="same"), axis=(1, 2, 3), keepdims=True)
        ink = ops.minimum(ink / ops.maximum(darkest, 0.25), 1.0)  # 0.25: a blank page's noise stays faint
        return ops.repeat(255 * (1 - ink), 3, axis=-1)

    def get_config(self):
        return {**super().get_config(), "window": self.window}


def columns_model(input_dim, output_dim, dropout, activation="leaky_relu"):
    """Residual CNN + BiLSTM as in published HTR models (e.g. Retsinas et al., DAS 2022):
    - a strided stem: full-resolution 16-channel maps cost the tutorial's model most of its time
      for little gain, so the first convolution already halves the resolution;
    - 1.5x the tutorial's filters (24, 48, 96): in the same minutes of training, fewer epochs
      that each learn more, a better trade than 16/32/64 or 32/64/128 (docs/experiments.md);
    - the last stage halves the height only, keeping width/4 columns: enough time steps for
      CTC to separate double letters;
    - each column of the last feature map becomes one step of the sequence, read left to right,
      instead of rows of the image laid end to end: a convolution as tall as the map reads the
      whole column, so it keeps where in the column a stroke is, which max-pooling over the
      height (Retsinas et al.) throws away;
    - ink is 1 and paper 0: the convolutions pad with zeros, which then reads as paper. With the
      tutorial's scaling (paper 1) the padding is a black frame around every word, and training
      was unstable (validation CER jumping above 30% late in runs);
    - PaperNormalization first, so photos read like scans."""
    inputs = layers.Input(shape=input_dim, name="input")
    x = PaperNormalization(dtype="float32", name="paper_normalization")(inputs)
    x = layers.Rescaling(-1.0 / 255, offset=1.0)(x)

    # A plain convolution, not a residual block: the block's 1x1 stride-2 shortcut convolution
    # on the 3-channel input corrupts memory in TensorFlow 2.21's CPU kernels (training aborts
    # within a few hundred steps, measured here); a 3x3 one is fine.
    x = layers.Conv2D(24, 3, strides=2, padding="same", kernel_initializer="he_uniform")(x)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(negative_slope=0.1)(x)
    x = residual_block(x, 24, activation=activation, skip_conv=False, strides=1, dropout=dropout)
    x = residual_block(x, 48, activation=activation, skip_conv=True, strides=2, dropout=dropout)
    x = residual_block(x, 48, activation=activation, skip_conv=False, strides=1, dropout=dropout)
    x = residual_block(x, 96, activation=activation, skip_conv=True, strides=(2, 1), dropout=dropout)
    x = residual_block(x, 96, activation=activation, skip_conv=False, strides=1, dropout=dropout)
    x = residual_block(x, 96, activation=activation, skip_conv=False, strides=1, dropout=dropout)

    # (height/8, width/4, 96) -> (1, width/4, 96): one feature vector per column, width/4 steps for CTC.
    x = layers.Conv2D(96, (x.shape[-3], 1))(x)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(negative_slope=0.1)(x)
    x = layers.Reshape((-1, x.shape[-1]), name="sequence")(x)  # -1: a line model's width follows each batch
    return recurrent_head(inputs, x, output_dim, dropout)


def with_ctc_shortcut(reader):
    """The reader plus a "CTC shortcut" (Retsinas et al., DAS 2022): a 1D convolution (3 steps
    wide) reads characters straight off the CNN's sequence, and train.py adds its CTC loss, at a
    small weight, to the reader's. Its gradient reaches the CNN without passing through the
    BiLSTM, so the CNN learns to see characters sooner, and the run reaches a lower CER in the
    same minutes. Only training uses it; ONNX gets the reader."""
    shortcut = layers.Conv1D(reader.output.shape[-1], 3, padding="same", activation="softmax", name="shortcut",
                             dtype="float32")(reader.get_layer("sequence").output)
    return Model(inputs=reader.input, outputs={"output": reader.output, "shortcut": shortcut})


def reader_of(model):
    """The images -> probabilities part of a model, with or without a CTC shortcut."""
    return Model(inputs=model.input, outputs=model.get_layer("output").output)


def recurrent_head(inputs, sequence, output_dim, dropout):
    x = layers.Bidirectional(layers.LSTM(128, return_sequences=True))(sequence)
    x = layers.Dropout(dropout)(x)
    # float32 even under mixed precision: a 16-bit softmax loses the small probabilities CTC takes the log of.
    output = layers.Dense(output_dim + 1, activation="softmax", name="output", dtype="float32")(x)
    return Model(inputs=inputs, outputs=output)
