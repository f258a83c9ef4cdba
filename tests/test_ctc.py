"""The CTC loss and the CER/WER metric, trained for real on a tiny model."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from htr.training.callbacks import Float32Validation
from htr.training.ctc import CTCLoss, CWERMetric
from htr.scoring import score
from mltu.tensorflow.metrics import CWERMetric as MltuCWERMetric
from mltu.utils.text_utils import ctc_decoder
from model import tutorial_model

VOCAB = "abcdefgh"
PAD = len(VOCAB)


def random_words(count, seed):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, 32, 128, 3)).astype(np.float32)
    labels = np.full((count, 5), PAD)
    for row in labels:
        length = rng.integers(1, 6)
        row[:length] = rng.integers(0, PAD, length)
    return images, labels


def average_cer(probabilities, labels):
    """What inferenceModel.py reports, computed from scratch in NumPy and Python."""
    texts = ["".join(VOCAB[i] for i in row if i != PAD) for row in labels]
    predictions = ctc_decoder(probabilities, VOCAB)
    return score([(None, text) for text in texts], predictions)[0]["average_cer"]


def compiled_tutorial_model(dtype_policy="float32"):
    keras.config.set_dtype_policy(dtype_policy)
    try:
        keras.utils.set_random_seed(0)
        model = tutorial_model((32, 128, 3), len(VOCAB), dropout=0.2)
    finally:
        keras.config.set_dtype_policy("float32")
    # A tiny learning rate keeps the predictions varied (a model that has collapsed to
    # all-blank outputs scores CER 1.0 everywhere, which would prove nothing).
    model.compile(optimizer=keras.optimizers.Adam(1e-6), loss=CTCLoss(PAD), metrics=[CWERMetric(PAD)])
    return model


@pytest.fixture(scope="module")
def model():
    return compiled_tutorial_model()


@pytest.mark.slow
def test_val_cer_is_computed_on_the_validation_set_alone(model):
    train_x, train_y = random_words(48, seed=1)
    val_x, val_y = random_words(24, seed=2)
    history = model.fit(train_x, train_y, validation_data=(val_x, val_y), epochs=2, batch_size=8, verbose=0).history
    # The weights after the last epoch are the ones its validation ran with.
    expected = average_cer(model.predict(val_x, verbose=0), val_y)
    assert expected not in (0.0, 1.0)
    assert history["val_CER"][-1] == pytest.approx(expected, abs=1e-5)
    # A second evaluation on other data must not carry anything over from the first.
    other_x, other_y = random_words(16, seed=3)
    cer = model.evaluate(other_x, other_y, batch_size=8, verbose=0, return_dict=True)["CER"]
    assert cer == pytest.approx(average_cer(model.predict(other_x, verbose=0), other_y), abs=1e-5)


@pytest.mark.slow
def test_bfloat16_training_is_validated_in_float32():
    train_x, train_y = random_words(32, seed=1)
    val_x, val_y = random_words(24, seed=2)
    val_data = tf.data.Dataset.from_tensor_slices((val_x, val_y)).batch(8)
    model, float32_copy = compiled_tutorial_model("mixed_bfloat16"), compiled_tutorial_model("float32")
    history = model.fit(train_x, train_y, epochs=1, batch_size=8, verbose=0,
                        callbacks=[Float32Validation(float32_copy, val_data)]).history
    # The copy holds the trained weights, and the logged figures are its float32 reading of them.
    for trained, copied in zip(model.get_weights(), float32_copy.get_weights()):
        np.testing.assert_array_equal(trained, copied)
    float32_probabilities = float32_copy.predict(val_x, verbose=0)
    assert history["val_CER"][-1] == pytest.approx(average_cer(float32_probabilities, val_y), abs=1e-5)
    float32_loss = float32_copy.evaluate(val_data, verbose=0, return_dict=True)["loss"]
    bfloat16_loss = model.evaluate(val_data, verbose=0, return_dict=True)["loss"]
    assert history["val_loss"][-1] == pytest.approx(float32_loss, rel=1e-6)
    assert history["val_loss"][-1] != pytest.approx(bfloat16_loss, rel=1e-5)  # what fit() would have logged (10x the float32 match tolerance)


def random_probabilities(count, seed):
    logits = np.random.default_rng(seed).normal(0, 3, (count, 64, PAD + 1))
    return (np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True)).astype(np.float32)


def test_metric_reset_forgets_earlier_batches():
    (_, first_y), (_, second_y) = random_words(16, seed=4), random_words(16, seed=5)
    first_p, second_p = random_probabilities(16, seed=4), random_probabilities(16, seed=5)
    expected = average_cer(second_p, second_y)
    assert expected != pytest.approx(average_cer(first_p, first_y), abs=1e-3)  # else the check proves nothing

    ours, mltus = CWERMetric(PAD), MltuCWERMetric(PAD)
    for metric in ours, mltus:
        metric.update_state(first_y, first_p)
        metric.reset_state()
        metric.update_state(second_y, second_p)
    assert float(ours.result()["CER"]) == pytest.approx(expected, abs=1e-5)
    wrong_words = np.mean([c > 0 for c in score([(None, "".join(VOCAB[i] for i in r if i != PAD)) for r in second_y],
                                                  ctc_decoder(second_p, VOCAB))[1]])
    assert float(ours.result()["WER"]) == pytest.approx(wrong_words, abs=1e-5)
    # Why the project has its own metric: mltu's keeps counting across reset_state() on Keras 3.
    assert float(mltus.result()["CER"]) != pytest.approx(expected, abs=1e-3)


def one_hot_path(path, steps=64):
    """Probabilities that spell `path` (blank = PAD) then blanks, each step almost certain."""
    probabilities = np.full((steps, PAD + 1), 1e-4, dtype=np.float32)
    for step, index in enumerate(path + [PAD] * (steps - len(path))):
        probabilities[step, index] = 1.0
    return probabilities / probabilities.sum(axis=1, keepdims=True)


def test_ctc_loss_uses_each_labels_true_length():
    loss = CTCLoss(PAD)
    label = np.array([[1, 2, 2, 3, PAD]])  # "bccd", padded to 5
    right = one_hot_path([1, PAD, 2, PAD, 2, 3])[None]
    wrong = one_hot_path([4, PAD, 5, 6])[None]
    assert float(loss(label, right)) < 0.1
    assert float(loss(label, wrong)) > 10
