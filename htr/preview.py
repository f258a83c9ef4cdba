"""See how the model reads: word images in a grid, each with its label and the prediction under it.

draw_preview makes the grid; write_preview saves it as a PNG (inferenceModel.py --preview), and
ValidationPreview puts it into TensorBoard every epoch during training, beside the curves:

    callbacks=[..., ValidationPreview(os.path.join(model_dir, "logs"), images, labels, configs.vocab)]
    tensorboard --logdir Models      # IMAGES and TEXT tabs, run "preview"
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # as in train.py: no TensorFlow start-up chatter

import cv2
import keras
import numpy as np
import tensorflow as tf

from htr.decoding import greedy_decode

COLUMNS = 4
IMAGE_BOX = (256, 64)  # width, height each word image is scaled to fit into
TEXT_LINE = 22  # pixels per line of text under an image
CELL = (IMAGE_BOX[0] + 8, IMAGE_BOX[1] + 2 * TEXT_LINE + 12)  # width, height of one image with its two lines
BLACK, GREEN, RED = (0, 0, 0), (0, 130, 0), (0, 0, 220)  # BGR


def draw_preview(images, labels, predictions):
    """BGR uint8 images (any sizes) -> one BGR uint8 grid, COLUMNS wide. Under each image its label
    and the prediction: green when they match, red (and a red frame) when not. A label of None
    (unlabelled image) shows the prediction alone, in black."""
    rows = max(1, -(-len(images) // COLUMNS))
    grid = np.full((rows * CELL[1], COLUMNS * CELL[0], 3), 255, np.uint8)
    for index, (image, label, prediction) in enumerate(zip(images, labels, predictions)):
        left, top = (index % COLUMNS) * CELL[0], (index // COLUMNS) * CELL[1]
        scale = min(IMAGE_BOX[0] / image.shape[1], IMAGE_BOX[1] / image.shape[0])
        width, height = max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale))
        x, y = left + (CELL[0] - width) // 2, top + 4 + (IMAGE_BOX[1] - height) // 2
        grid[y:y + height, x:x + width] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)

        text_y = top + IMAGE_BOX[1] + 4 + TEXT_LINE - 6
        if label is None:
            put_text(grid, prediction, left, text_y, BLACK)
            continue
        wrong = prediction != label
        put_text(grid, f"label: {label}", left, text_y, BLACK)
        put_text(grid, f"read:  {prediction}", left, text_y + TEXT_LINE, RED if wrong else GREEN)
        if wrong:
            cv2.rectangle(grid, (left + 1, top + 1), (left + CELL[0] - 2, top + CELL[1] - 2), RED, 2)
    return grid


def put_text(grid, text, left, baseline, color):
    # OpenCV's built-in font has ASCII only: other characters show as "?".
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    cv2.putText(grid, text, (left + 6, baseline), cv2.FONT_HERSHEY_SIMPLEX, 0.5, color, 1, cv2.LINE_AA)


def write_preview(path, images, labels, predictions):
    """Draws the grid into `path` (.png), under a temporary name first, so no half-written file is left."""
    ok, png = cv2.imencode(".png", draw_preview(images, labels, predictions))
    if not ok:
        raise OSError(f"could not encode the preview for {path}")
    with open(path + ".tmp", "wb") as f:
        f.write(png.tobytes())
    os.replace(path + ".tmp", path)


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
