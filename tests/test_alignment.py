"""Words, spans, confidences and boxes from a line's CTC output (htr.alignment), on probabilities
built by hand where the right answer is known, and on a generated line image."""
import cv2
import numpy as np
import pytest

from htr.alignment import align, lexicon_per_word, word_boxes, word_confidences, word_spans
from htr.data.demo import random_writer_style, render_word

VOCAB = "abcdefghijklmnopqrstuvwxyz "


def frames(steps, vocab=VOCAB):
    """One row per time step from a string ("-" is the blank, each other symbol 0.98) or a dict
    {symbol: probability}; what is left of a row's probability is spread over the other symbols."""
    symbols = vocab + "-"
    rows = np.zeros((len(steps), len(symbols)))
    for row, step in zip(rows, steps):
        step = step if isinstance(step, dict) else {step: 0.98}
        rest = (1 - sum(step.values())) / max(len(symbols) - len(step), 1)
        row[:] = [step.get(symbol, rest) for symbol in symbols]
    return rows


def test_align_finds_each_character_at_its_peak():
    #                   0123456789012345678901
    probabilities = frames("--h-e-ll-l-o---")
    assert align(probabilities, "hello", VOCAB) == [(2, 2), (4, 4), (6, 7), (9, 9), (11, 11)]


def test_align_aligns_a_line_longer_than_a_byte_of_states():
    text = "the quick brown fox jumps over the lazy dog and then runs far far away"  # 70 characters: 141 states
    probabilities = frames("-" + "-".join(text) + "-")
    assert align(probabilities, text, VOCAB) == [(2 * i + 1, 2 * i + 1) for i in range(len(text))]


def test_align_puts_a_character_on_its_whole_plateau_and_handles_edges():
    probabilities = frames("aaa-b" + "b")
    assert align(probabilities, "ab", VOCAB) == [(0, 2), (4, 5)]
    assert align(probabilities, "", VOCAB) == []
    one = frames("-x-")
    assert align(one, "x", VOCAB) == [(1, 1)]


def test_align_refuses_what_it_cannot_align():
    with pytest.raises(ValueError, match="vocabulary"):
        align(frames("-a-"), "A", VOCAB)
    with pytest.raises(ValueError, match="steps"):
        align(frames("a-"), "aa", VOCAB)  # a doubled letter needs a blank between: 3 steps,
    assert align(frames("aa-"), "aa", VOCAB) == [(0, 0), (2, 2)]  # and gets them, the blank made up


def test_align_follows_the_text_even_where_the_model_is_unsure():
    # The text need not be the greedy reading (a lexicon word): it still aligns, at its likeliest steps.
    probabilities = frames(["-", "c", {"a": 0.4, "o": 0.5}, "-", "t", "-"])
    assert align(probabilities, "cat", VOCAB) == [(1, 1), (2, 2), (4, 4)]


def test_align_breaks_ties_as_the_plain_viterbi_does():
    # Where paths tie (rounded probabilities), align keeps the earliest option: stay, then move, then skip.
    rng = np.random.default_rng(0)
    for _ in range(50):
        probabilities = np.round(rng.dirichlet(np.full(4, 0.3), size=12), 1)
        text = "".join(rng.choice(list("ab "), size=rng.integers(1, 5)))
        assert align(probabilities, text, "ab ") == plain_viterbi(probabilities, text, "ab ")


def plain_viterbi(probabilities, text, vocab):
    """align written out state by state: the reference its array steps must agree with."""
    symbols = [len(vocab)] + [s for c in text for s in (vocab.index(c), len(vocab))]
    log_p = np.log(np.maximum(probabilities, np.finfo(np.float64).tiny))[:, symbols]
    score = [log_p[0, 0], log_p[0, 1]] + [-np.inf] * (len(symbols) - 2)
    came_from = np.zeros((len(probabilities), len(symbols)), int)
    for step in range(1, len(probabilities)):
        new = []
        for state in range(len(symbols)):
            options = [score[state], score[state - 1] if state >= 1 else -np.inf,
                       score[state - 2] if state >= 2 and state % 2 and symbols[state] != symbols[state - 2] else -np.inf]
            came_from[step, state] = int(np.argmax(options))
            new.append(options[came_from[step, state]] + log_p[step, state])
        score = new
    state = len(symbols) - 1 if score[-1] >= score[-2] else len(symbols) - 2
    path = []
    for step in range(len(probabilities) - 1, -1, -1):
        path.append(state)
        state -= came_from[step, state]
    path = path[::-1]
    return [(path.index(2 * i + 1), len(path) - 1 - path[::-1].index(2 * i + 1)) for i in range(len(text))]


def test_word_spans_reach_from_space_to_space_within_a_pitch_of_the_characters():
    #                   0         1         2         3
    #                   01234567890123456789012345678901
    probabilities = frames("---a-b-c--- ---i---------- -o-o-")
    words, spans = word_spans(probabilities, "abc i oo", VOCAB)
    assert words == ["abc", "i", "oo"]
    # The pitch, the median of the steps between characters of a word (2, 2, 2), is 2 steps. So
    # "abc" starts 2 steps before its "a" (1, not the line start 0) and ends 2 after its "c" (9, not
    # 10, before the space); "i" reaches 2 steps either side (13..17, not 12..25, the space to space);
    # "oo" runs from just after the space (27) to the line's end (31), both within its reach.
    assert spans == [(1, 9), (13, 17), (27, 31)]


def test_a_line_of_one_word_and_a_word_of_one_character():
    probabilities = frames("------w-o-r-d------")
    assert word_spans(probabilities, "word", VOCAB) == (["word"], [(4, 14)])
    assert word_spans(frames("--a--"), "a", VOCAB) == (["a"], [(0, 4)])  # no pitch: not tightened
    assert word_spans(frames("-a- -b-"), " a  b ", VOCAB)[0] == ["a", "b"]  # extra spaces make no words
    assert word_spans(frames("--"), "", VOCAB) == ([], [])


def line_of(words, doubtful=None):
    """Probabilities of a line of words, each character on one step between blanks, a space
    between words; the characters of `doubtful` are only 0.6 likely, the rest going to "x"."""
    steps = []
    for number, word in enumerate(words):
        steps += ["-", " ", "-"] if number else ["-"]
        for char in word:
            steps += [{char: 0.6, "x": 0.39} if word == doubtful else {char: 0.999}, {"-": 0.999}]
    return frames([step if isinstance(step, dict) else {step: 0.999} for step in steps])


def test_a_sure_word_is_near_one_a_doubtful_one_lower_and_the_others_unchanged():
    words = ["the", "cat", "sat"]
    sure = line_of(words)
    found, spans = word_spans(sure, "the cat sat", VOCAB)
    assert found == words
    before = word_confidences(sure, spans, found, VOCAB)
    assert min(before) > 0.95

    doubtful = line_of(words, doubtful="cat")
    found, spans = word_spans(doubtful, "the cat sat", VOCAB)
    after = word_confidences(doubtful, spans, found, VOCAB)
    assert after[1] < 0.5  # 0.6 ** 3, about 0.22
    assert after[0] == pytest.approx(before[0]) and after[2] == pytest.approx(before[2])
    assert word_confidences(sure, [], [], VOCAB) == []


def test_confidences_equal_the_probability_of_each_span_alone():
    from htr.decoding import ctc_log_likelihoods
    probabilities = line_of(["ab", "cde"], doubtful="cde")
    words, spans = word_spans(probabilities, "ab cde", VOCAB)
    alone = [np.exp(ctc_log_likelihoods(probabilities[t0:t1 + 1], [word], VOCAB)[0]) for (t0, t1), word in zip(spans, words)]
    assert word_confidences(probabilities, spans, words, VOCAB) == pytest.approx(alone)


def test_the_lexicon_fixes_a_misspelt_word_and_leaves_a_free_word_alone():
    # "helo": the second "l" is there but less likely than a blank, so greedy drops it; "qux" is
    # clearly read and no lexicon word of its length comes close.
    steps = ["-", "h", "-", "e", "-", "l", "-", {"l": 0.3, "-": 0.65}, "-", "o", "-", " ", "-", "q", "-", "u", "-", "x", "-"]
    probabilities = frames(steps)
    words, spans = word_spans(probabilities, "helo qux", VOCAB)
    lexicon = sorted(["hello", "world", "quiz", "cat"], key=lambda word: (len(word), word))
    assert lexicon_per_word(probabilities, spans, words, lexicon, VOCAB) == "hello qux"
    assert lexicon_per_word(probabilities, spans, words, [], VOCAB) == "helo qux"


def test_word_boxes_trim_the_columns_to_the_ink_and_clip_to_the_image():
    ink = np.zeros((20, 40), dtype=bool)
    ink[5:9, 6:10] = True  # a blob in the columns of steps 1-2
    ink[2:18, 30:33] = True
    assert word_boxes([(0, 3), (4, 5), (7, 12)], 0, 4, ink) == [[6, 5, 4, 4], [16, 0, 8, 20], [30, 2, 3, 16]]
    assert word_boxes([(0, 0)], 2.5, 4, ink) == [[6, 5, 1, 4]]  # columns [2.5, 6.5) widened to [2, 7): 6 is in
    assert word_boxes([(20, 30)], 0, 4, ink) == [[40, 0, 0, 20]]  # past the image's right edge


def generated_line(words, seed):
    """Words rendered by the demo generator in one writer's hand, side by side with gaps, on white
    paper -> (grey line image, each word's true ink box [x, y, w, h], the ink mask by Otsu)."""
    rng = np.random.default_rng(seed)
    style = random_writer_style(rng, [])  # the pen writer: no fonts needed
    images = [render_word(word, style, rng)[0] for word in words]
    gaps = rng.integers(25, 60, len(words) + 1)
    height = max(image.shape[0] for image in images) + 10
    line = np.full((height, sum(image.shape[1] for image in images) + gaps.sum()), 255, np.uint8)
    x, places = int(gaps[0]), []
    for image, gap in zip(images, gaps[1:]):
        y = int(rng.integers(0, height - image.shape[0] + 1))
        line[y:y + image.shape[0], x:x + image.shape[1]] = image
        places.append((x, y, image.shape[1], image.shape[0]))
        x += image.shape[1] + int(gap)
    ink = cv2.threshold(line, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)[1] > 0
    truth = []
    for x, y, w, h in places:
        ys, xs = np.nonzero(ink[y:y + h, x:x + w])
        truth.append([x + xs.min(), y + ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
    return line, truth, ink


def iou(a, b):
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    overlap = max(width, 0) * max(height, 0)
    return overlap / (a[2] * a[3] + b[2] * b[3] - overlap)


def peaks_on_the_words(words, truth, steps):
    """A line's probabilities with each character's peak at its share of its word's true width
    (step = x / 4) and each space's peak in the middle of the gap after the word."""
    symbols = ["-"] * steps
    for number, (word, (x, _, w, _)) in enumerate(zip(words, truth)):
        for i, char in enumerate(word):
            symbols[int((x + (i + 0.5) * w / len(word)) // 4)] = char
        if number + 1 < len(words):
            symbols[int((x + w + truth[number + 1][0]) / 2 // 4)] = " "
    return frames(symbols)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_word_boxes_fall_on_the_words_of_a_generated_line(seed):
    words = ["when", "a", "quiet", "river", "bends"][:3 + seed]
    line, truth, ink = generated_line(words, seed)
    probabilities = peaks_on_the_words(words, truth, line.shape[1] // 4)
    found, spans = word_spans(probabilities, " ".join(words), VOCAB)
    assert found == words
    boxes = word_boxes(spans, 0, 4, ink)
    assert len(boxes) == len(truth)
    for word, box, true_box in zip(words, boxes, truth):  # in order: a box off by one word misses
        assert iou(box, true_box) >= 0.7, (word, box, true_box)


def test_word_boxes_off_by_one_word_would_fail():
    # The check above can fail: the boxes of one line, paired with the next word's truth, overlap nothing.
    words = ["when", "a", "quiet"]
    line, truth, ink = generated_line(words, 0)
    _, spans = word_spans(peaks_on_the_words(words, truth, line.shape[1] // 4), " ".join(words), VOCAB)
    boxes = word_boxes(spans, 0, 4, ink)
    assert all(iou(box, true_box) < 0.1 for box, true_box in zip(boxes[1:], truth))


def test_a_mark_in_the_margin_stays_out_of_the_first_words_box():
    # word_spans' reach: the first word's span stops about a letter before its first character,
    # so a blot at the line's start is not in its box, as it would be with the span from step 0.
    words = ["when", "a", "quiet"]
    line, truth, ink = generated_line(words, 0)
    assert truth[0][0] >= 25  # the left margin
    ink = ink.copy()
    ink[truth[0][1]:truth[0][1] + 4, 2:6] = True
    _, spans = word_spans(peaks_on_the_words(words, truth, line.shape[1] // 4), " ".join(words), VOCAB)
    assert spans[0][0] > 2
    assert iou(word_boxes(spans, 0, 4, ink)[0], truth[0]) >= 0.7
    assert iou(word_boxes([(0, spans[0][1])], 0, 4, ink)[0], truth[0]) < 0.9
