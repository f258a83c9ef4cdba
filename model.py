"""The seed tutorial's recognizer: a residual CNN reads the word image, a BiLSTM reads the
resulting column sequence, and a softmax over vocab + 1 (the CTC blank) per time step."""
import warnings

from keras import layers
from keras.models import Model
from mltu.tensorflow.model_utils import residual_block

# mltu's residual_block still passes LeakyReLU's old `alpha` argument; it works the same.
warnings.filterwarnings("ignore", message="Argument `alpha` is deprecated")


def train_model(input_dim, output_dim, activation="leaky_relu", dropout=0.2):
    inputs = layers.Input(shape=input_dim, name="input")

    # Scale pixels inside the model, so the exported ONNX model takes raw 0-255 images.
    # (The seed used a Lambda layer; Rescaling does the same and serialises safely in Keras 3.)
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
    x = layers.Reshape((x.shape[-3] * x.shape[-2], x.shape[-1]))(x)

    x = layers.Bidirectional(layers.LSTM(128, return_sequences=True))(x)
    x = layers.Dropout(dropout)(x)

    # float32 even under mixed precision: a 16-bit softmax loses the small probabilities CTC takes the log of.
    output = layers.Dense(output_dim + 1, activation="softmax", name="output", dtype="float32")(x)
    return Model(inputs=inputs, outputs=output)
