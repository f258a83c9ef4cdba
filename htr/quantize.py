"""inferenceModel.py --quantize: an int8 copy of an exported model, for faster CPU inference."""
import logging
import os
import tempfile

import numpy as np

from htr.data.labels_csv import read_labelled_csv
from htr.files import replacing
from htr.images import UnreadableImage, read_image
from htr.preprocess import stack_padded
from htr.recognizer import ImageToWordModel, ModelFileError

CALIBRATION_IMAGES = 256  # --quantize measures the network's value ranges on this many images,
CALIBRATION_LINES = 64  # or lines: a line holds about as many pixels as ten words
CALIBRATION_BATCH = 32


def quantize_model(model_path):
    """The int8 copy of the model, model.int8.onnx beside it: made the first time (and again
    whenever model.onnx is newer), calibrated on the first images of the model folder's train.csv."""
    import onnx

    model = ImageToWordModel(model_path)
    int8_path = model.model_path[:-len(".onnx")] + ".int8.onnx"
    if os.path.isfile(int8_path) and os.path.getmtime(int8_path) >= os.path.getmtime(model.model_path):
        return int8_path
    quantized = quantized_onnx(model, calibration_images(model))
    del quantized.metadata_props[:]  # exactly the float model's: the vocabulary and input size, as JSON
    quantized.metadata_props.extend(onnx.load(model.model_path).metadata_props)
    with replacing(int8_path) as tmp_path:
        onnx.save(quantized, tmp_path)
    return int8_path


def calibration_images(model):
    """The first CALIBRATION_IMAGES readable images of the model folder's train.csv, prepared for the
    model; for a line model (its width follows each image), the first CALIBRATION_LINES, made one width
    (same_width)."""
    train_csv = os.path.join(os.path.dirname(model.model_path), "train.csv")
    if not os.path.isfile(train_csv):
        raise ModelFileError(f"--quantize calibrates on the training images listed in {train_csv}, which is missing; "
                             "keep train.py's train.csv beside the model")
    images = []
    for path, _ in read_labelled_csv(train_csv)[:CALIBRATION_IMAGES if model.width else CALIBRATION_LINES]:
        try:
            images.append(model.resize(read_image(path)))
        except UnreadableImage:
            pass
    if not images:
        raise ModelFileError(f"none of the images listed in {train_csv} can be read: nothing to calibrate on")
    return images if model.width else same_width(images)


def same_width(images):
    """Prepared line images, each padded with paper on the right or cut there to their median width:
    onnxruntime's calibration stacks every layer's outputs over all batches, so they must be of one size."""
    width = int(np.median([image.shape[1] for image in images]))
    return list(stack_padded([image[:, :width] for image in images]))


def quantized_onnx(model, images):
    """The model quantized, as an onnx ModelProto. Dynamic quantization alone would run the
    convolutions as slow ConvInteger, so the convolutions, LeakyReLUs and residual Adds are quantized
    statically (uint8 activations, int8 weights per channel: the fast pair for onnxruntime's CPU
    kernels), after quant_pre_process has folded the batch normalizations into the convolutions (else
    they stay behind as slow float Mul/Add); the LSTM and the last MatMul are then quantized
    dynamically. Each activation range covers the 99.99th percentile of the calibration values, not
    all of them, as a few extreme values would stretch the ranges and cost accuracy. Weights use 7 of
    their 8 bits (reduce_range): CPUs without VNNI instructions (AVX2 only) multiply uint8 by int8 in
    16-bit sums that can saturate, so the same model.int8.onnx is safe on every CPU."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    logging.disable(logging.WARNING)  # the quantizer warns about every shape tensor it rightly leaves alone
    try:
        with tempfile.TemporaryDirectory() as folder:
            folded, static = os.path.join(folder, "folded.onnx"), os.path.join(folder, "static.onnx")
            # auto_merge: a line model's width is a free dimension, which the symbolic shape inference
            # otherwise gives up on ("Incomplete symbolic shape inference").
            quant_pre_process(model.model_path, folded, auto_merge=True)
            quantize_static(folded, static, calibration_reader(model.input_names[0], images), quant_format=QuantFormat.QOperator,
                            per_channel=True, op_types_to_quantize=["Conv", "LeakyRelu", "Add"],
                            calibrate_method=CalibrationMethod.Percentile, extra_options={"CalibPercentile": 99.99},
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, reduce_range=True)
            quantize_dynamic(static, os.path.join(folder, "int8.onnx"), op_types_to_quantize=["LSTM", "MatMul"],
                             weight_type=QuantType.QInt8, reduce_range=True)
            return onnx.load(os.path.join(folder, "int8.onnx"))
    finally:
        logging.disable(logging.NOTSET)


def calibration_reader(input_name, images):
    """The images as onnxruntime's calibration input, in batches of one size: its percentile
    calibration stacks every batch's values into one array, so it fails on a short last batch; the
    few images past the last full batch are left out."""
    from onnxruntime.quantization import CalibrationDataReader

    size = min(CALIBRATION_BATCH, len(images))

    class Calibration(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{input_name: np.float32(images[start:start + size])}
                                 for start in range(0, len(images) - size + 1, size)])

        def get_next(self):
            return next(self.batches, None)

    return Calibration()
