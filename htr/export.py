"""Export the trained Keras model to ONNX, or fail loudly.

mltu's `Model2onnx` callback prints conversion errors and carries on, so a run could end
"successfully" with no ONNX file. Here every failure raises `OnnxExportError`, the file is
written under a temporary name and renamed only when complete, and the model carries its
vocabulary and input size as metadata so inference needs nothing but the .onnx file.
"""
import json

import numpy as np

from htr.files import replacing


class OnnxExportError(Exception):
    pass


def export_onnx(model, onnx_path, metadata):
    """Converts `model` with tf2onnx; `metadata` values are stored JSON-encoded."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    # A free batch size, so inference can run any number of images at once.
    spec = (tf.TensorSpec((None, *model.input_shape[1:]), tf.float32, name="input"),)
    try:
        onnx_model, _ = tf2onnx.convert.from_keras(model, input_signature=spec)
        for key, value in metadata.items():
            onnx_model.metadata_props.add(key=key, value=json.dumps(value))
        onnx.checker.check_model(onnx_model)
    except Exception as e:
        raise OnnxExportError(f"ONNX export to {onnx_path} failed: {type(e).__name__}: {e}") from e

    try:
        with replacing(onnx_path) as tmp_path:
            onnx.save(onnx_model, tmp_path)
    except OSError as e:
        raise OnnxExportError(f"could not write {onnx_path}: {e.strerror or e}; check the folder is writable and has space") from e


def onnx_keras_max_difference(model, onnx_path, images):
    """Largest absolute difference between the Keras and ONNX outputs on `images`."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    images = np.asarray(images, dtype=np.float32)
    onnx_out = session.run(None, {session.get_inputs()[0].name: images})[0]
    keras_out = model.predict(images, verbose=0)
    return float(np.max(np.abs(onnx_out - keras_out)))
