"""CTC decoding: from the model's per-time-step probabilities to a word.

The model outputs, for each of its T time steps (narrow columns of the image), a probability
for every vocabulary character plus the CTC blank, which is the LAST index. A path (one symbol
per step) reads as text by merging repeats and then dropping blanks: "hh-e-ll-lo" and
"h-ee-l-l-o" both read "hello". A text's probability is the sum over all of its paths.

- greedy_decode: the most likely symbol at every step. Fast, and what training's CER reports.
- beam_search: keeps the `beam_width` most likely texts after each step, each with the summed
  probability of all its paths, so it finds a word whose probability is spread over many paths.
- lexicon_decode: the word of a word list that the model finds most likely, unless the free
  decode is clearly more likely (the word is not in the list).
- confidences: how sure the model is of each decoded text, whichever decoder chose it.

Why our own beam search: pyctcdecode 0.5.0, the maintained CTC beam decoder on PyPI, requires
numpy<2 (this project uses numpy 2), and it is built for speech: it splits text on spaces and
constrains words only through a KenLM language model. A single handwritten word needs neither,
and the prefix beam search below is short. All scores are natural-log probabilities.
"""
import math
from bisect import bisect_left, bisect_right

import numpy as np

BEAM_PRUNE_PROBABILITY = 1e-3  # a beam is not extended by characters less likely than this at a step
LEXICON_LENGTH_WINDOW = 2  # lexicon words scored: those within this many characters of the free decode's length
LEXICON_MARGIN = 5.0  # keep the free decode when it is more than e^5 (~150) times as likely as the best lexicon word


def greedy_decode(probabilities, vocab):
    """(batch, T, len(vocab) + 1) probabilities -> one text per image: the best character at
    each step, repeats merged, blanks (index len(vocab)) dropped. Whole-batch NumPy, so decoding
    stays a small share of batched inference."""
    best = np.argmax(probabilities, axis=-1)
    new = np.ones_like(best, dtype=bool)
    new[:, 1:] = best[:, 1:] != best[:, :-1]
    keep = new & (best < len(vocab))
    characters = np.array(list(vocab))
    return ["".join(characters[row[mask]]) for row, mask in zip(best, keep)]


def log_add(a, b):
    """log(e^a + e^b) of two Python floats. Plain-float math is many times faster per call than
    NumPy's, and the beam search makes a few such calls per beam, character and time step."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def beam_search(probabilities, vocab, beam_width=10):
    """(T, len(vocab) + 1) probabilities of one image -> [(text, log probability), ...], best first.

    Each text (prefix) keeps two scores: the probability of its paths that end in a blank, and
    of those that end in its last character. They differ in what the next character does: after
    a blank, a repeated character starts a new letter ("l-l" is "ll"); right after the same
    character, it merges ("ll" is "l")."""
    with np.errstate(divide="ignore"):  # log 0 = -inf is a fine score: that path is impossible
        log_p = np.log(np.asarray(probabilities, dtype=np.float64))
    blank = len(vocab)
    beams = {(): (0.0, -math.inf)}  # prefix (tuple of character indices) -> (ends in blank, ends in a character)
    for step_array in log_p:
        step = step_array.tolist()
        likely = np.flatnonzero(step_array[:blank] >= math.log(BEAM_PRUNE_PROBABILITY)).tolist()
        extended = {}

        def add(prefix, ends_blank=-math.inf, ends_char=-math.inf):
            old_blank, old_char = extended.get(prefix, (-math.inf, -math.inf))
            extended[prefix] = (log_add(old_blank, ends_blank), log_add(old_char, ends_char))

        for prefix, (ends_blank, ends_char) in beams.items():
            total = log_add(ends_blank, ends_char)
            add(prefix, ends_blank=total + step[blank])  # a blank: the text stays
            if prefix:  # the last character again: merged, the text stays
                add(prefix, ends_char=ends_char + step[prefix[-1]])
            for c in likely:  # a new character
                from_paths = ends_blank if prefix and prefix[-1] == c else total
                add(prefix + (c,), ends_char=from_paths + step[c])
        ranked = sorted(((log_add(*scores), prefix, scores) for prefix, scores in extended.items()), reverse=True)
        beams = {prefix: scores for total, prefix, scores in ranked[:beam_width] if total > -math.inf}
    return [("".join(vocab[i] for i in prefix), log_add(*scores)) for prefix, scores in beams.items()]


def ctc_log_likelihoods(probabilities, texts, vocab):
    """log p(text | image) for each of `texts` (all characters in vocab), summed over every path:
    the CTC forward algorithm, run on all texts at once. `probabilities` is (T, len(vocab) + 1)
    for one image that every text is scored on, or (len(texts), T, len(vocab) + 1): an image per text.

    A text's paths run through its characters with blanks between them and at both ends,
    e.g. "-h-e-l-l-o-". At each step a path stays on its symbol, moves to the next one, or
    skips a blank between two different characters. The sums are kept as probabilities, each
    text's rescaled to add up to 1 after every step so they cannot underflow; the logs of the
    scales add up to the log-likelihood (the same numbers as summing in log space, and faster)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim == 2:
        p = np.broadcast_to(p, (len(texts), *p.shape))  # a view: the one image is not copied
    blank = p.shape[-1] - 1
    index = {c: i for i, c in enumerate(vocab)}
    lengths = np.array([len(text) for text in texts], dtype=int)
    symbols = np.full((len(texts), 2 * max(lengths, default=0) + 1), blank)  # "-h-e-l-l-o-", padded with blanks
    for row, text in enumerate(texts):
        symbols[row, 1:2 * len(text):2] = [index[c] for c in text]
    can_skip = np.zeros(symbols.shape, dtype=bool)
    can_skip[:, 2:] = (symbols[:, 2:] != blank) & (symbols[:, 2:] != symbols[:, :-2])

    # probability of being on each symbol after the current step, rescaled
    alpha = np.take_along_axis(p[:, 0], symbols, axis=1)
    alpha[:, 2:] = 0
    log_scale = np.zeros(len(texts))
    for step in range(1, p.shape[1]):
        moved = alpha.copy()
        moved[:, 1:] += alpha[:, :-1]
        moved[:, 2:] += np.where(can_skip[:, 2:], alpha[:, :-2], 0)
        alpha = moved * np.take_along_axis(p[:, step], symbols, axis=1)
        scale = alpha.sum(axis=1, keepdims=True)
        scale[scale == 0] = 1  # an impossible text stays at 0
        alpha /= scale
        log_scale += np.log(scale[:, 0])
    rows = np.arange(len(texts))
    # A path ends on the last character or on the blank after it.
    end = alpha[rows, 2 * lengths] + np.where(lengths > 0, alpha[rows, 2 * lengths - 1], 0)
    with np.errstate(divide="ignore"):
        return np.log(end) + log_scale


def confidences(probabilities, texts, vocab):
    """(batch, T, len(vocab) + 1) probabilities and one decoded text per image -> one confidence
    per text in [0, 1]: the model's probability of the text, p(text | image), summed over every
    path (ctc_log_likelihoods). The same measure for greedy, beam and lexicon readings."""
    if not len(texts):
        return []
    return np.clip(np.exp(ctc_log_likelihoods(probabilities, texts, vocab)), 0, 1).tolist()


def read_lexicon(path, vocab):
    """Words of a one-word-per-line file that the model can spell, sorted by length (so the
    words of a length range are one slice), and how many were left out for other characters."""
    with open(path, encoding="utf-8") as f:
        words = {line.strip() for line in f if line.strip()}
    spellable = sorted((word for word in words if set(word) <= set(vocab)), key=lambda word: (len(word), word))
    return spellable, len(words) - len(spellable)


def lexicon_decode(probabilities, free_text, lexicon, vocab, margin=LEXICON_MARGIN):
    """The lexicon word (from read_lexicon) most likely under the model, or `free_text`
    (greedy or beam output) when that is more than e^margin times as likely.

    Without the margin every word missing from the lexicon would become an error; too wide a
    margin forces unknown words into lexicon words. Only words within LEXICON_LENGTH_WINDOW
    characters of the free reading's length are scored: others need many edits, so they would
    hardly ever come close, and scoring every word of a large lexicon for every image is slow."""
    start = bisect_left(lexicon, len(free_text) - LEXICON_LENGTH_WINDOW, key=len)
    stop = bisect_right(lexicon, len(free_text) + LEXICON_LENGTH_WINDOW, key=len)
    candidates = lexicon[start:stop]
    if not candidates:
        return free_text
    scores = ctc_log_likelihoods(probabilities, candidates + [free_text], vocab)
    best = int(np.argmax(scores[:-1]))
    return candidates[best] if scores[best] >= scores[-1] - margin else free_text
