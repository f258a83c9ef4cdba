"""A line's CTC output -> its words, each with the time steps it occupies, a box and a confidence.

The line model reads a whole line in one pass; its T time steps are columns of the prepared image
(probabilities (T, len(vocab) + 1), blank last, as in htr.decoding). To give each word a box and a
confidence, the decoded text is aligned back to the steps:

- align: the most likely CTC path of the text (Viterbi forced alignment), per character the
  (first, last) step it occupies.
- word_spans: the words of the text and the steps each owns (the rule is in its docstring).
- word_confidences: p(word | its span), the same measure htr.decoding.confidences gives a word image.
- lexicon_per_word: the lexicon applied word by word within the line.
- word_boxes: spans -> [x, y, w, h] pixel boxes, trimmed to the ink.

Pure NumPy: no model, no image decoding, so it is tested on probabilities built by hand.
"""
import math
import re

import numpy as np

from htr.decoding import LEXICON_MARGIN, ctc_log_likelihoods, lexicon_decode

SPACE = " "
LOG_FLOOR = math.log(np.finfo(np.float64).tiny)  # log 0 made finite, so a text the model finds impossible still aligns
REACH = 1.0  # a word's span reaches this many character pitches past its first and last character (word_spans)


def label_sequence(text, vocab):
    """text -> its CTC symbols with blanks between and around ("-h-e-l-l-o-"), and which symbols a
    path may reach by skipping the blank before them (a character not equal to the one before)."""
    index = {c: i for i, c in enumerate(vocab)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise ValueError(f"cannot align {text!r}: {missing} not in the vocabulary")
    blank = len(vocab)
    symbols = np.full(2 * len(text) + 1, blank)
    symbols[1::2] = [index[c] for c in text]
    can_skip = np.zeros(len(symbols), dtype=bool)
    can_skip[2:] = (symbols[2:] != blank) & (symbols[2:] != symbols[:-2])
    return symbols, can_skip


def align(probabilities, text, vocab):
    """(T, len(vocab) + 1) probabilities and a text -> [(first, last) time step of each character].

    The Viterbi path through "-t-e-x-t-": at each step a path stays on its symbol, moves to the
    next, or skips a blank between two different characters; the best path's steps on each
    character are where that character is. Every character gets at least one step. Raises
    ValueError for a character outside vocab (callers pass decoded texts, which cannot have one)
    and when T is too short for the text (one step per character, plus one per doubled letter)."""
    if not text:
        return []
    symbols, can_skip = label_sequence(text, vocab)
    doubled = sum(a == b for a, b in zip(text, text[1:]))
    p = np.asarray(probabilities, dtype=np.float64)
    if len(p) < len(text) + doubled:
        raise ValueError(f"cannot align {text!r} ({len(text) + doubled} steps needed) to {len(p)} steps")
    with np.errstate(divide="ignore"):
        log_p = np.maximum(np.log(p[:, symbols]), LOG_FLOOR)  # (T, S)
    # The scores sit after two -inf in `padded`, so the states one and two back are plain shifted views.
    padded = np.full(len(symbols) + 2, -np.inf)
    score, moved, skipped = padded[2:], padded[1:-1], padded[:-2]
    score[:2] = log_p[0, :2]  # a path starts on the first blank or the first character
    no_skip = np.where(can_skip, 0.0, -np.inf)
    came_from = np.zeros((len(p), len(symbols)), dtype=np.int8)  # 0 stayed, 1 moved, 2 skipped a blank
    for step in range(1, len(p)):  # on ties the earlier option wins, as np.argmax would pick it
        skip = skipped + no_skip
        best = np.maximum(score, moved)
        choice = came_from[step]
        choice[moved > score] = 1
        choice[skip > best] = 2
        score[:] = np.maximum(best, skip) + log_p[step]
    state = len(symbols) - 1 if score[-1] >= score[-2] else len(symbols) - 2  # ends on the last blank or character
    path = np.empty(len(p), dtype=int)
    for step in range(len(p) - 1, -1, -1):
        path[step] = state
        state -= int(came_from[step, state])  # a Python int: an int8 result would overflow past 127 states
    characters = 2 * np.arange(len(text)) + 1  # the path never goes back, so a character's steps are one run
    first = np.searchsorted(path, characters, side="left")
    last = np.searchsorted(path, characters, side="right") - 1
    return list(zip(first.tolist(), last.tolist()))


def word_spans(probabilities, text, vocab):
    """The words of `text` (runs of characters between spaces: leading, trailing or repeated spaces
    make no empty words) and the time steps each owns -> (words, [(t0, t1), ...]), inclusive.

    The rule: a word owns the steps from just after the previous space's last step (or step 0) to
    just before the next space's first step (or step T - 1); that is then tightened to reach at
    most REACH character pitches before its first character's first step and after its last
    character's last step. The pitch is the line's median distance, in steps, between the centres
    of consecutive characters of a word; a line whose words all have one character is not tightened.

    Why: CTC peaks are spiky, one or two steps somewhere inside a letter, so a span cut at the first
    and last characters' peaks would cut off parts of the first and last letters; the blanks up to
    the spaces cover them, and word_boxes then trims the columns to the ink. But a wide gap, the
    line's margins, or a neighbour's stroke there would stretch the box; a letter's ink lies within
    about a pitch of its peak, so the reach keeps the word's own letters and drops the rest. Spans
    never hold a space's steps, so word_confidences scores a word on steps where the word can be."""
    steps = align(probabilities, text, vocab)
    matches = list(re.finditer(f"[^{SPACE}]+", text))
    centres = np.array([sum(span) / 2 for span in steps])
    pitches = [np.diff(centres[m.start():m.end()]) for m in matches]
    pitches = np.concatenate(pitches) if pitches else np.zeros(0)
    reach = math.ceil(REACH * np.median(pitches)) if len(pitches) else len(probabilities)
    words, spans = [], []
    for m in matches:
        start = steps[m.start() - 1][1] + 1 if m.start() > 0 else 0
        stop = steps[m.end()][0] - 1 if m.end() < len(text) else len(probabilities) - 1
        words.append(m.group())
        spans.append((max(start, steps[m.start()][0] - reach), min(stop, steps[m.end() - 1][1] + reach)))
    return words, spans


def word_confidences(probabilities, spans, words, vocab):
    """One confidence in [0, 1] per word: p(word | the steps of its span), the CTC forward algorithm
    on the span alone, so it says how sure the model is of this word, whatever the rest of the line.

    All words are scored in one call of ctc_log_likelihoods: each span is padded at its end with
    steps that are surely blank, which leaves a text's probability unchanged (every path of the
    word just ends in more blanks)."""
    if not len(words):
        return []
    p = np.asarray(probabilities, dtype=np.float64)
    longest = max(t1 - t0 + 1 for t0, t1 in spans)
    sliced = np.zeros((len(words), longest, p.shape[1]))
    sliced[:, :, -1] = 1
    for row, (t0, t1) in enumerate(spans):
        sliced[row, :t1 - t0 + 1] = p[t0:t1 + 1]
    return np.clip(np.exp(ctc_log_likelihoods(sliced, list(words), vocab)), 0, 1).tolist()


def lexicon_per_word(probabilities, spans, words, lexicon, vocab, margin=LEXICON_MARGIN):
    """The line's text with the lexicon (htr.decoding.read_lexicon's sorted list) applied word by
    word: each word's span decoded by lexicon_decode with the word as its free reading, the words
    re-joined by single spaces. A lexicon of whole lines would almost never hold the line; the
    words of one are what a word list knows."""
    p = np.asarray(probabilities)
    return SPACE.join(lexicon_decode(p[t0:t1 + 1], word, lexicon, vocab, margin) for (t0, t1), word in zip(spans, words))


def word_boxes(spans, left, step_width, ink):
    """Spans of time steps -> [x, y, w, h] boxes (ints) in the original line image.

    A span (t0, t1) covers the columns [left + t0 * step_width, left + (t1 + 1) * step_width) (left
    and step_width in original-image pixels, from the crop and resize before the model), widened
    to whole pixels and clipped to the image. The box is the bounding box of the ink (`ink`, a
    (height, width) bool mask of the image) in those columns, so it fits the word however loose
    the span; with no ink there it is those columns at the full height (a span wholly outside the
    image gives a box of width 0 at its edge)."""
    ink = np.asarray(ink, dtype=bool)
    height, width = ink.shape
    inked_columns = ink.any(axis=0)
    boxes = []
    for t0, t1 in spans:
        x0 = min(max(math.floor(left + t0 * step_width), 0), width)
        x1 = min(max(math.ceil(left + (t1 + 1) * step_width), x0), width)
        columns = np.flatnonzero(inked_columns[x0:x1])
        if not len(columns):
            boxes.append([x0, 0, x1 - x0, height])
            continue
        rows = np.flatnonzero(ink[:, x0 + columns[0]:x0 + columns[-1] + 1].any(axis=1))
        boxes.append([x0 + int(columns[0]), int(rows[0]), int(columns[-1] - columns[0] + 1), int(rows[-1] - rows[0] + 1)])
    return boxes
