"""What a finished training run leaves beside its model, for train.py: the best epoch in ONNX,
checked against Keras, and the test set's scores."""
import os
import sys

import keras

from htr.data.labels_csv import read_labelled_csv
from htr.export import OnnxExportError, export_onnx, onnx_keras_max_difference
from htr.files import write_json
from model import build_model, reader_of


def export_best_epoch(configs, val_data, last_checkpoint, speed, interrupted):
    """The best epoch's weights in a float32 copy of the model on one device, whatever the
    strategy and precision of training: ONNX gets a plain float32 model, checked against the same
    model on a batch of validation images. training.json records how long training took."""
    if not os.path.exists(os.path.join(configs.model_path, "model.keras")):
        sys.exit(f"error: no epoch finished in {configs.model_path}{f' ({interrupted})' if interrupted else ''}; "
                 "nothing to export")
    write_json({"epochs": last_checkpoint.epoch + 1, "samples": speed.samples, "seconds": speed.seconds},
               os.path.join(configs.model_path, "training.json"))
    keras.config.set_dtype_policy("float32")
    export_model = build_model(configs)
    export_model.load_weights(os.path.join(configs.model_path, "model.keras"))
    export_model = reader_of(export_model)  # without the CTC shortcut, which only training uses
    onnx_path = os.path.join(configs.model_path, "model.onnx")
    metadata = {"vocab": configs.vocab, "height": configs.height, "width": configs.width,
                "keep_aspect_ratio": configs.keep_aspect_ratio, "max_text_length": configs.max_text_length,
                "crop_to_ink": configs.crop}
    try:
        export_onnx(export_model, onnx_path, metadata)
    except OnnxExportError as e:
        sys.exit(f"error: {e}")
    images = val_data[0][0]
    difference = onnx_keras_max_difference(export_model, onnx_path, images)
    write_json({"images": len(images), "max_abs_difference": difference}, os.path.join(configs.model_path, "onnx_check.json"))
    if difference > 1e-4:
        sys.exit(f"error: the ONNX model's outputs differ from Keras by {difference:.2g} (> 1e-4); do not use {onnx_path}")
    print(f"Exported {onnx_path} (ONNX vs Keras max difference {difference:.1e} on {len(images)} validation images)")


def score_test_set(model_dir):
    """With a test part (--split aachen): the exported ONNX model reads the test words once, at
    the very end. Nothing chose the model or its settings on them, so these are the figures to
    compare with papers; they go to test_scores.json beside the model."""
    if not os.path.exists(os.path.join(model_dir, "test.csv")):
        return
    # Imported when needed: importing onnxruntime writes a file into the temporary folder.
    from htr.recognizer import ImageToWordModel, predict_files
    from htr.scoring import score
    rows = read_labelled_csv(os.path.join(model_dir, "test.csv"))
    predictions, _ = predict_files(ImageToWordModel(model_dir), [path for path, _ in rows], batch_size=64)
    summary, _ = score(rows, predictions)
    write_json(summary, os.path.join(model_dir, "test_scores.json"))
    print(f"Test set, {summary['words']} words by writers unseen in training: CER {summary['corpus_cer']:.2%}, "
          f"average CER {summary['average_cer']:.2%}, word accuracy {summary['word_accuracy']:.2%} "
          f"({os.path.join(model_dir, 'test_scores.json')})")
