"""How well a model reads: CER, word accuracy, and how well its confidences rank its errors."""
import numpy as np
from mltu.utils.text_utils import edit_distance

from htr.files import write_csv


def score(rows, predictions):
    """The original tutorial's average CER (mean of per-image edits / length), corpus CER (all edits /
    all characters), word accuracy (images read exactly right: words, or whole lines) and WER (word
    edits / words, the words of a line split at spaces), over the rows that have a prediction."""
    per_word_cer, edits, characters, correct, word_edits, words = [], 0, 0, 0, 0, 0
    for (_, label), prediction in zip(rows, predictions):
        if prediction is None:
            per_word_cer.append(None)
            continue
        distance = edit_distance(list(prediction), list(label))
        per_word_cer.append(distance / max(len(label), 1))
        edits, characters, correct = edits + distance, characters + len(label), correct + (prediction == label)
        word_edits, words = word_edits + edit_distance(prediction.split(), label.split()), words + len(label.split())
    scored = [cer for cer in per_word_cer if cer is not None]
    summary = {
        "words": len(scored),
        "average_cer": float(np.mean(scored)) if scored else float("nan"),
        "corpus_cer": edits / characters if characters else float("nan"),
        "word_accuracy": correct / len(scored) if scored else float("nan"),
        "wer": word_edits / words if words else float("nan"),
    }
    return summary, per_word_cer


def confidence_auroc(rows, predictions, prediction_confidences):
    """How well the confidence ranks errors: the chance that a randomly chosen correct reading has a
    higher confidence than a randomly chosen wrong one (ties count half), i.e. the area under the
    ROC curve of confidence as a detector of correct readings. NaN unless some are right and some wrong."""
    read = [(prediction == label, confidence) for (_, label), prediction, confidence
            in zip(rows, predictions, prediction_confidences) if prediction is not None]
    right = np.array([confidence for correct, confidence in read if correct])
    wrong = np.sort([confidence for correct, confidence in read if not correct])
    if not len(right) or not len(wrong):
        return float("nan")
    below, not_above = np.searchsorted(wrong, right, "left"), np.searchsorted(wrong, right, "right")
    return float((below + not_above).sum() / 2 / (len(right) * len(wrong)))


def write_predictions(rows, predictions, prediction_confidences, per_word_cer, output_path):
    write_csv(output_path, ["image_path", "label", "prediction", "confidence", "cer"],
              [(path, label, *values) for (path, label), *values in zip(rows, predictions, prediction_confidences,
                                                                         per_word_cer)])
