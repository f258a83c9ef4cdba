"""CTC decoders on probabilities built by hand, where the right answer is known."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from htr.decoding import beam_search, confidences, ctc_log_likelihoods, greedy_decode, lexicon_decode, read_lexicon


def write_lexicon(folder, words):
    path = folder / "lexicon.txt"
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    return str(path)


def frames(vocab, steps):
    """One row per time step from {symbol: probability} ("-" is the blank); what is left of each
    row's probability is spread evenly over the other symbols."""
    symbols = vocab + "-"
    rows = np.zeros((len(steps), len(symbols)))
    for row, step in zip(rows, steps):
        rest = (1 - sum(step.values())) / max(len(symbols) - len(step), 1)
        row[:] = [step.get(symbol, rest) for symbol in symbols]
    return rows


def all_texts(probabilities, vocab):
    """Every text with its probability, by summing over all paths: the definition CTC decoders approximate."""
    totals = {}
    for path in itertools.product(range(len(vocab) + 1), repeat=len(probabilities)):
        text = "".join(vocab[k] for k, _ in itertools.groupby(path) if k < len(vocab))
        totals[text] = totals.get(text, 0.0) + np.prod(probabilities[np.arange(len(path)), path])
    return totals


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_forward_algorithm_and_beam_search_sum_over_every_path(steps, seed):
    vocab = "ab"
    # Every probability at least 0.01, above BEAM_PRUNE_PROBABILITY: the beam search is then exact.
    probabilities = (np.random.default_rng(seed).dirichlet(np.ones(3), size=steps) + 0.01) / 1.03
    exact = all_texts(probabilities, vocab)
    texts = list(exact)
    assert np.exp(ctc_log_likelihoods(probabilities, texts, vocab)) == pytest.approx([exact[t] for t in texts])

    best_text, best_score = beam_search(probabilities, vocab, beam_width=1000)[0]
    assert exact[best_text] == pytest.approx(max(exact.values()))
    assert np.exp(best_score) == pytest.approx(exact[best_text])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=40), st.floats(0.99, 1.0))
def test_beam_equals_greedy_on_peaked_distributions(path, peak):
    # With at least 0.99 on one symbol per step (at most 40 steps), the greedy path alone holds
    # over half of all probability, so its text is the most likely one and beam search must agree.
    vocab = "abcde"  # index 5 is the blank
    probabilities = frames(vocab, [{(vocab + "-")[k]: peak} for k in path])
    greedy = greedy_decode(probabilities[np.newaxis], vocab)[0]
    assert beam_search(probabilities, vocab, beam_width=5)[0][0] == greedy


def test_beam_beats_greedy_when_a_letter_is_spread_over_steps():
    # Each step says blank 0.6, "a" 0.4: the best path is blank-blank (""), p = 0.36, but "a" has
    # three paths (a-, -a, aa): p = 0.24 + 0.24 + 0.16 = 0.64.
    probabilities = frames("a", [{"-": 0.6, "a": 0.4}] * 2)
    assert greedy_decode(probabilities[np.newaxis], "a") == [""]
    (text, score), *_ = beam_search(probabilities, "a")
    assert text == "a" and np.exp(score) == pytest.approx(0.64)


def test_beam_search_keeps_double_letters_apart():
    vocab = "lo"
    probabilities = frames(vocab, [{"l": 0.9}, {"-": 0.9}, {"l": 0.9}, {"o": 0.9}])
    assert beam_search(probabilities, vocab)[0][0] == "llo"


def test_lexicon_corrects_a_misread_letter(tmp_path):
    vocab = "cdehlorw"
    steps = [{"h": 0.9}, {"c": 0.5, "e": 0.45}, {"l": 0.9}, {"-": 0.9}, {"l": 0.9}, {"o": 0.9}]
    probabilities = frames(vocab, steps)
    free = beam_search(probabilities, vocab)[0][0]
    assert free == "hcllo"
    lexicon, _ = read_lexicon(write_lexicon(tmp_path, ["world", "hello", "held", "cello"]), vocab)
    assert lexicon_decode(probabilities, free, lexicon, vocab) == "hello"


def test_lexicon_keeps_the_free_reading_of_a_word_it_lacks(tmp_path):
    vocab = "cdehlorw"
    probabilities = frames(vocab, [{"c": 0.95}, {"o": 0.95}, {"r": 0.95}, {"d": 0.95}])
    lexicon, _ = read_lexicon(write_lexicon(tmp_path, ["world", "hello", "held"]), vocab)
    assert lexicon_decode(probabilities, "cord", lexicon, vocab) == "cord"


def test_read_lexicon_sorts_by_length_and_leaves_out_unspellable_words(tmp_path):
    lexicon, left_out = read_lexicon(write_lexicon(tmp_path, ["hello", "Zoo", "he", "", "held", "he"]), "dehlo")
    assert lexicon == ["he", "held", "hello"] and left_out == 1


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_confidence_is_the_probability_of_each_images_own_text(steps, seed):
    vocab = "ab"
    rng = np.random.default_rng(seed)
    batch = rng.dirichlet(np.ones(3), size=(4, steps))
    texts = ["", "a", "ab", "ba"]
    scores = confidences(batch, texts, vocab)
    assert scores == pytest.approx([all_texts(p, vocab).get(text, 0.0) for p, text in zip(batch, texts)])
    assert all(0 <= score <= 1 for score in scores)


def test_a_clear_reading_is_more_confident_than_a_doubtful_one():
    vocab = "cdehlorw"
    clear = frames(vocab, [{"c": 0.95}, {"o": 0.95}, {"r": 0.95}, {"d": 0.95}])
    doubtful = frames(vocab, [{"c": 0.5, "e": 0.45}, {"o": 0.95}, {"r": 0.6, "w": 0.3}, {"d": 0.95}])
    texts = greedy_decode(np.stack([clear, doubtful]), vocab)
    assert texts == ["cord", "cord"]
    clear_score, doubtful_score = confidences(np.stack([clear, doubtful]), texts, vocab)
    assert clear_score > 0.75 and doubtful_score < 0.35
