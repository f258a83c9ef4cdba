"""CTC loss and CER/WER metric for Keras 3.

mltu ships both (`CTCloss`, `CWERMetric`), but on Keras 3 they go wrong:
- `CWERMetric` keeps raw `tf.Variable`s that Keras 3 does not track, so `reset_state()`
  never resets them: CER/WER become a running average since the first training batch,
  and `val_CER` (what checkpointing, early stopping and the LR schedule watch) mixes in
  training batches of every earlier epoch.
- `CTCloss` passes the padded label length, so the padding tokens count as label characters.
Here the metric state lives in `add_variable` (tracked and reset by Keras every epoch and
before validation) and the loss uses each label's true length.
"""
import keras
import tensorflow as tf


def label_lengths(labels, padding_token):
    """Labels are padded at the end with `padding_token`; count what comes before."""
    return tf.reduce_sum(tf.cast(tf.not_equal(labels, padding_token), tf.int32), axis=1)


@keras.saving.register_keras_serializable(package="htr")  # so keras.models.load_model finds it
class CTCLoss(keras.losses.Loss):
    def __init__(self, padding_token, name="CTCloss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.padding_token = padding_token

    def call(self, y_true, y_pred):
        y_true = tf.cast(y_true, tf.int32)
        time_steps = tf.fill([tf.shape(y_pred)[0]], tf.shape(y_pred)[1])
        # The model outputs softmax probabilities; CTC wants log-probabilities, blank last.
        return tf.nn.ctc_loss(
            labels=y_true,
            logits=tf.math.log(tf.cast(y_pred, tf.float32) + 1e-7),
            label_length=label_lengths(y_true, self.padding_token),
            logit_length=time_steps,
            logits_time_major=False,
            blank_index=-1,
        )

    def get_config(self):
        return {**super().get_config(), "padding_token": self.padding_token}


@keras.saving.register_keras_serializable(package="htr")
class CWERMetric(keras.metrics.Metric):
    """Average character error rate per word (edits / label length, the original tutorial's "CER") and
    word error rate (share of words with any error), from greedy CTC decoding."""

    def __init__(self, padding_token, name="CWER", **kwargs):
        super().__init__(name=name, **kwargs)
        self.padding_token = padding_token
        self.cer_sum = self.add_variable(shape=(), initializer="zeros", name="cer_sum")
        self.wer_sum = self.add_variable(shape=(), initializer="zeros", name="wer_sum")
        self.words = self.add_variable(shape=(), initializer="zeros", name="words")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = tf.cast(y_true, tf.int64)
        time_steps = tf.fill([tf.shape(y_pred)[0]], tf.shape(y_pred)[1])
        decoded, _ = tf.nn.ctc_greedy_decoder(
            tf.transpose(tf.cast(y_pred, tf.float32), [1, 0, 2]), time_steps, merge_repeated=True, blank_index=-1)

        # The true labels as a sparse tensor, padding left out.
        where = tf.where(tf.not_equal(y_true, self.padding_token))
        truth = tf.SparseTensor(where, tf.gather_nd(y_true, where), tf.shape(y_true, out_type=tf.int64))

        cer = tf.edit_distance(tf.cast(decoded[0], tf.int64), truth, normalize=True)
        # Words count by their sample weight: 0 for the padding of a last batch (distribute.py).
        weight = tf.ones_like(cer) if sample_weight is None else tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
        self.cer_sum.assign_add(tf.reduce_sum(cer * weight))
        self.wer_sum.assign_add(tf.reduce_sum(tf.cast(tf.not_equal(cer, 0.0), tf.float32) * weight))
        self.words.assign_add(tf.reduce_sum(weight))

    def result(self):
        cer_sum, wer_sum, words = self.cer_sum, self.wer_sum, self.words
        replica = tf.distribute.get_replica_context()
        if replica is not None and replica.num_replicas_in_sync > 1:
            # Under several replicas Keras calls result() on each replica's own words and reports the
            # mean of those averages, which is off when the replicas scored different numbers of
            # words (a short last batch). The sums over all replicas give every word the same weight.
            cer_sum, wer_sum, words = replica.all_reduce("sum", [tf.identity(v) for v in (cer_sum, wer_sum, words)])
        return {
            "CER": tf.math.divide_no_nan(cer_sum, words),
            "WER": tf.math.divide_no_nan(wer_sum, words),
        }

    def get_config(self):
        return {**super().get_config(), "padding_token": self.padding_token}
