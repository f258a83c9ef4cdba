"""
The offline demo dataset: a few thousand handwriting-like word images in the
IAM words layout, generated in seconds, so that `python train.py --dataset demo`
works on a fresh machine with no download and no account.

The images are synthetic. Each word is drawn with a small pen alphabet defined
below (control points that a smoothed, jittered pen stroke follows), in the
style of one imaginary writer per form, then slanted, rotated, wobbled, and
inked onto noisy paper. The result is read by the same words.txt parser as the
real IAM set, so everything after loading is exercised for real. A model
trained on it learns this alphabet, not real handwriting: use it to check the
pipeline end to end, then train on IAM.

Demo lines (generate_demo_lines, for a line model: train.py --dataset demo --preset line) set
these words side by side, one writer per line, on one baseline, in a labels.csv folder; boxes.json
beside it gives each word's box, the truth for word boxes read from a line.

Run it on its own with:  python -m htr.data.demo --num-words 3000  (add --lines for demo lines)
"""

import argparse
import functools
import glob
import json
import math
import multiprocessing
import os
import shutil
import time

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from htr import ASSETS_DIR
from htr.files import write_csv, write_json

DEMO_DIR = os.path.join("Datasets", "Demo_Words")
DEMO_LINES_DIR = os.path.join("Datasets", "Demo_Lines")
WORDS_PER_LINE = (2, 8)  # fewest and most words of a demo line
WORD_GAP = (0.3, 0.6)  # the gap between a line's words, as a share of the writer's word height
VOCABULARY_PATH = os.path.join(ASSETS_DIR, "demo_vocabulary.txt")
MARKER_NAME = ".complete"  # written last: a folder without it was never finished
HEADER = [
    "# Demo_Words: synthetic handwriting-like words made by demo_words.py (offline demo, not real handwriting).",
    "# Same line format as IAM words.txt:",
    "#   word-id result graylevel x y w h tag transcription",
    "#   d01-000-00-03 ok 154 408 768 27 51 NN letter",
    "# result is always ok; graylevel is the ink/paper threshold; x y w h place the word on an imaginary",
    "# form page (w h are the image size); tag is a placeholder (CD number, the mark itself for punctuation,",
    "# NN otherwise); images are words/<first 3 chars of id>/<form id>/<word id>.png",
]

# OpenCV 5 draws every FONT_HERSHEY_* face with an embedded sans-serif TrueType font, so
# there is no stroke-based script font left to borrow. Instead here is a small pen alphabet.
# Each glyph is "advance: stroke ; stroke ...", every stroke a list of x,y control points
# (y up, baseline 0, x-height 10, ascenders 20, descenders -9) that the pen follows after
# smoothing. A repeated point keeps a sharp corner. The first stroke of a lowercase letter
# enters at its first point and leaves at its last, so cursive writers join letters simply
# by continuing that stroke into the next letter. They lift the pen before letters that
# start at the top right (a c d g o q s): a join there closes a loop that reads as "e" or "8".
GLYPH_SPECS = {
    "a": "11: 8,8 6,10 3,10 0,6 1,1 4,0 7,3 8,7 9,10 9,10 8,3 9,0 11,1",
    "b": "10: 1,20 1,20 0,0 0,0 2,6 5,9 8,8 9,4 7,1 4,0 1,1",
    "c": "9: 8,8 6,10 3,10 0,6 1,1 4,0 7,1 9,3",
    "d": "11: 8,8 6,10 3,10 0,6 1,1 4,0 7,3 8,8 9,20 9,20 8,3 9,0 11,1",
    "e": "9: 1,4 5,5 8,7 7,10 4,10 1,7 0,3 2,0 6,0 9,2",
    "f": "7: 8,18 6,20 4,20 3,17 2,0 ; 0,10 6,10",
    "g": "10: 8,8 6,10 3,10 0,6 1,2 4,1 7,3 8,7 9,10 9,10 8,0 7,-6 4,-9 1,-8 0,-6",
    "h": "11: 1,20 1,20 0,0 0,0 1,5 4,9 7,9 8,6 8,1 9,0 11,1",
    "i": "5: 0,8 1,10 1,10 1,2 2,0 4,1 ; 1,14 1.3,15",
    "j": "5: 0,8 2,10 2,10 2,-5 1,-8 -1,-9 -3,-7 ; 2,14 2.3,15",
    "k": "10: 1,20 1,20 0,0 0,0 1,5 6,10 8,9 6,6 2,5 2,5 6,4 8,0 10,1",
    "l": "5: 0,3 2,10 3,17 2,20 1,18 1,10 1,2 2,0 4,1",
    "m": "15: 0,10 0,10 0,0 0,0 1,6 3,9 5,9 6,7 6,0 6,0 7,6 9,9 11,9 12,7 12,1 13,0 15,1",
    "n": "10: 0,10 0,10 0,0 0,0 1,6 3,9 6,9 7,7 7,1 8,0 10,1",
    "o": "10: 6,10 3,10 0,6 1,1 4,0 7,1 8,5 7,9 5,10 4,9",
    "p": "10: 0,10 0,-9 0,-9 0,5 3,9 6,10 8,7 8,3 6,0 3,0 0,2",
    "q": "10: 8,8 6,10 3,10 0,6 1,1 4,0 7,3 8,7 8,10 8,10 8,-9 8,-9 9,-5 11,-3",
    "r": "8: 0,10 0,10 0,0 0,0 1,5 3,8 6,10 8,9",
    "s": "8: 7,9 4,10 1,9 1,7 4,5 7,3 7,1 4,0 1,0 0,1",
    "t": "7: 2,17 2,17 2,2 3,0 6,1 ; 0,10 6,10",
    "u": "10: 0,10 0,3 1,0 4,0 7,3 8,10 8,10 8,2 9,0 11,1",
    "v": "9: 0,10 4,0 4,0 8,10 10,10",
    "w": "13: 0,10 3,0 3,0 6,8 6,8 9,0 9,0 12,10 14,10",
    "x": "9: 0,10 2,9 6,1 8,0 10,1 ; 8,10 0,0",
    "y": "10: 0,10 0,3 1,0 4,0 7,3 8,10 8,10 8,0 7,-6 4,-9 1,-8 0,-6",
    "z": "9: 0,10 8,10 8,10 0,0 0,0 8,0",
    "A": "14: 0,0 7,19 7,19 14,0 ; 3,7 11,7",
    "B": "12: 0,0 0,19 ; 0,19 7,19 10,17 10,13 7,10 0,10 ; 7,10 11,8 11,3 8,0 0,0",
    "C": "12: 11,16 8,19 4,19 1,15 0,9 1,3 4,0 8,0 11,3",
    "D": "12: 0,0 0,19 ; 0,19 6,19 10,16 12,10 11,4 7,0 0,0",
    "E": "10: 10,19 0,19 0,19 0,0 0,0 10,0 ; 0,10 7,10",
    "F": "10: 10,19 0,19 0,19 0,0 ; 0,10 7,10",
    "G": "13: 11,16 8,19 4,19 1,15 0,9 1,3 4,0 8,0 11,3 11,8 11,8 7,8",
    "H": "12: 0,19 0,0 ; 12,19 12,0 ; 0,10 12,10",
    "I": "3: 1,19 1,0",
    "J": "9: 9,19 9,4 8,1 5,0 2,0 0,3",
    "K": "11: 0,19 0,0 ; 11,19 11,19 0,7 ; 3,10 11,0",
    "L": "10: 0,19 0,19 0,0 0,0 10,0",
    "M": "15: 0,0 1,19 1,19 7,5 7,5 13,19 13,19 14,0",
    "N": "13: 0,0 0,19 0,19 12,0 12,0 12,19",
    "O": "14: 7,19 3,18 0,13 0,6 3,1 7,0 11,1 14,6 14,13 11,18 7,19 5,18",
    "P": "11: 0,0 0,19 ; 0,19 7,19 10,17 10,12 7,9 0,9",
    "Q": "14: 7,19 3,18 0,13 0,6 3,1 7,0 11,1 14,6 14,13 11,18 7,19 5,18 ; 8,4 13,-1",
    "R": "11: 0,0 0,19 ; 0,19 7,19 10,17 10,12 7,9 0,9 ; 4,9 11,0",
    "S": "10: 10,17 7,19 3,19 0,16 1,12 5,10 9,8 10,4 8,1 4,0 0,2",
    "T": "12: 0,19 12,19 ; 6,19 6,0",
    "U": "12: 0,19 0,19 0,6 2,1 6,0 10,1 12,6 12,19",
    "V": "12: 0,19 0,19 6,0 6,0 12,19",
    "W": "17: 0,19 0,19 4,0 4,0 8,14 8,14 12,0 12,0 16,19",
    "X": "12: 0,19 12,0 ; 12,19 0,0",
    "Y": "12: 0,19 0,19 6,10 6,10 12,19 ; 6,10 6,0",
    "Z": "12: 0,19 12,19 12,19 0,0 0,0 12,0",
    "0": "10: 5,17 2,15 0,9 1,3 5,0 8,2 10,8 9,14 5,17",
    "1": "6: 1,13 5,17 5,17 5,0",
    "2": "10: 1,13 3,16 6,17 9,15 9,11 6,7 0,0 0,0 10,0",
    "3": "10: 1,15 4,17 8,16 9,13 7,10 4,9 ; 4,9 8,8 10,5 9,1 5,0 0,2",
    "4": "10: 7,0 7,17 7,17 0,5 0,5 10,5",
    "5": "10: 9,17 2,17 2,17 1,9 1,9 5,10 8,9 10,5 8,1 4,0 0,2",
    "6": "10: 8,17 4,15 1,10 0,5 2,1 5,0 8,1 9,5 7,8 4,8 1,5",
    "7": "10: 0,17 10,17 10,17 3,0",
    "8": "10: 5,9 1,11 1,15 5,17 9,15 9,11 5,9 1,7 0,3 3,0 7,0 10,3 9,7 5,9",
    "9": "10: 9,12 7,9 3,9 1,12 2,16 6,17 9,15 9,10 8,0",
    ".": "3: 1,0 1.5,1",
    ",": "3: 1.5,1 1.5,0 0.5,-3",
    "'": "3: 1.5,19 1,15",
    '"': "5: 1.5,19 1,15 ; 4.5,19 4,15",
    "-": "7: 0,6 6,6",
    "!": "3: 1.5,19 1,5 ; 1,0 1.2,1",
    "?": "9: 1,15 3,18 6,19 8,17 8,14 5,11 4,8 4,5 ; 4,0 4.2,1",
    ";": "3: 1.5,9 1.5,10 ; 1.5,1 1.5,0 0.5,-3",
    ":": "3: 1.5,9 1.5,10 ; 1.5,0 1.5,1",
    "(": "5: 5,20 2,15 1,6 2,-2 5,-6",
    ")": "5: 0,20 3,15 4,6 3,-2 0,-6",
}


def parse_glyph(spec):
    """'advance: x,y x,y ; x,y ...' -> (advance, [points array per stroke])."""
    advance, strokes = spec.split(":")
    return float(advance), [np.array([p.split(",") for p in stroke.split()], dtype=np.float64) for stroke in strokes.split(";")]


PEN_GLYPHS = {char: parse_glyph(spec) for char, spec in GLYPH_SPECS.items()}

# Handwriting TrueType fonts, when the machine has some, add writers with other letter shapes.
# Plain fonts (DejaVu Oblique and friends) are left out on purpose: printed letters teach
# shapes that never occur in IAM, and the pen writers already vary slant, width and joins.
FONT_DIRS = ["/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.fonts"), os.path.expanduser("~/.local/share/fonts")]
HANDWRITING_HINTS = ["hand", "script", "cursive", "brush", "comic", "kalam", "caveat", "dancing", "satisfy", "pacifico", "indie", "marker", "shadows", "architect", "patrick"]


def load_vocabulary(path=VOCABULARY_PATH):
    """The shipped word list, one word per line, most frequent first (the order sets how often a word is drawn)."""
    with open(path, encoding="utf-8") as file:
        return [line.strip() for line in file if line.strip()]


def find_handwriting_fonts(font_dirs=FONT_DIRS):
    """Sorted paths of handwriting-looking .ttf/.otf files that draw every character we need."""
    paths = sorted(
        path
        for font_dir in font_dirs
        for path in glob.glob(os.path.join(glob.escape(font_dir), "**", "*"), recursive=True)
        if path.lower().endswith((".ttf", ".otf")) and any(hint in os.path.basename(path).lower() for hint in HANDWRITING_HINTS)
    )
    usable = []
    for path in paths:
        try:
            font = ImageFont.truetype(path, 32)
        except OSError:
            continue
        missing = draw_character(font, "\U0010fffd")  # the box drawn for a character the font lacks
        if all(draw_character(font, char) != missing for char in GLYPH_SPECS):
            usable.append(path)
    return usable


def draw_character(font, char):
    """The pixels of one character, to compare with the box a font draws for characters it lacks."""
    image = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(image).text((8, 8), char, fill=255, font=font)
    return image.tobytes()


@functools.lru_cache(maxsize=64)
def load_font(path, size):
    """Fonts are slow to open and every writer reuses one, so keep the open ones."""
    return ImageFont.truetype(path, size)


def random_writer_style(rng, fonts):
    """One imaginary writer: the habits that stay the same across a whole form."""
    return {
        "font": str(fonts[rng.integers(len(fonts))]) if fonts and rng.random() < 0.3 else "pen",
        "x_height": rng.uniform(16, 32),  # pixels: word images come out about 40-120 px high, like IAM crops
        "width": rng.uniform(0.8, 1.25),  # narrow or wide letters
        "slant": rng.uniform(-0.2, 0.45),  # most people lean right, some lean left
        "thickness": rng.uniform(0.08, 0.17),  # pen width as a share of the x-height
        "spacing": rng.uniform(0.5, 3.0),  # extra gap between letters, in pen units
        "jitter": rng.uniform(0.15, 0.5),  # how unsteady the hand is, in pen units
        "cursive": rng.random() < 0.6,  # join lowercase letters
        "ink": rng.uniform(15, 65),  # gray value of the ink
    }


def chaikin(points, iterations=3):
    """Smooth a control polygon by corner cutting: a cheap way to turn a few points into a pen curve."""
    for _ in range(iterations):
        if len(points) < 3:
            break
        cut = np.stack([0.75 * points[:-1] + 0.25 * points[1:], 0.25 * points[:-1] + 0.75 * points[1:]], axis=1)
        points = np.vstack([points[:1], cut.reshape(-1, 2), points[-1:]])
    return points


def pen_strokes(word, style, rng):
    """Control points of `word` in pen units, every letter a little different in size, height and shape."""
    strokes, x, joined = [], 0.0, 0
    for i, char in enumerate(word):
        advance, glyph = PEN_GLYPHS[char]
        size = rng.normal(1.0, 0.05)
        scale = np.array([style["width"] * size, size])
        offset = np.array([x, rng.normal(0.0, 0.5)])  # the baseline wanders a little per letter
        letter = [(stroke + rng.normal(0.0, style["jitter"], stroke.shape)) * scale + offset for stroke in glyph]
        if style["cursive"] and i > 0 and word[i - 1].islower() and char.islower() and char not in "acdgoqs":
            strokes[joined] = np.vstack([strokes[joined], letter[0]])  # the pen runs on into this letter
            strokes.extend(letter[1:])
        else:
            joined = len(strokes)
            strokes.extend(letter)
        x += advance * scale[0] + style["spacing"] + rng.normal(0.0, 0.4)
    return strokes


def render_pen(word, style, rng):
    """Draw `word` with the pen alphabet: white ink on a black uint8 canvas with room around it, and
    the row of its baseline (which may lie outside the canvas, for ' or -)."""
    unit = style["x_height"] / 10.0
    curves = [chaikin(stroke) * [unit, -unit] for stroke in pen_strokes(word, style, rng)]  # image y points down
    thickness = max(2, round(style["thickness"] * style["x_height"] * rng.uniform(0.85, 1.15)))
    corner = np.vstack(curves).min(axis=0) - thickness - 2
    size = np.ceil(np.vstack(curves).max(axis=0) - corner + thickness + 2).astype(int)
    canvas = np.zeros((size[1], size[0]), np.uint8)
    cv2.polylines(canvas, [np.round((curve - corner) * 16).astype(np.int32) for curve in curves], False, 255, thickness, cv2.LINE_AA, shift=4)
    return canvas, int(round(-corner[1]))


def render_font(word, style):
    """Draw `word` with a TrueType handwriting font: white ink on a black uint8 canvas, and the row of its baseline."""
    font = load_font(style["font"], round(style["x_height"] * 2))  # x-height is about half the em size
    stroke_width = round(style["thickness"] * 5)
    left, top, right, bottom = font.getbbox(word, stroke_width=stroke_width)
    canvas = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(canvas).text((2 - left, 2 - top), word, fill=255, font=font, stroke_width=stroke_width)
    return np.asarray(canvas), 2 - top + font.getmetrics()[0]  # the text's top is the font's ascender line


def smooth_noise(rng, height, width, cell):
    """Random field in about [-1, 1] that changes over `cell` pixels: the basis of every wobble below."""
    grid = rng.normal(0.0, 0.5, (max(2, round(height / cell) + 1), max(2, round(width / cell) + 1)))
    return cv2.resize(grid.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)


def distort(canvas, style, rng):
    """Slant, rotate, rescale and elastically wobble the word in one cv2.remap, on a canvas big enough to lose no ink."""
    x_height = style["x_height"]
    slant = style["slant"] + rng.normal(0.0, 0.05)
    angle = rng.normal(0.0, 0.025)  # radians
    scale = rng.normal(1.0, 0.05)
    rotate = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    forward = scale * rotate @ np.array([[1.0, -slant], [0.0, 1.0]])  # shear: the top of a letter moves right

    height, width = canvas.shape[:2]  # a second channel (the baseline of a line's word) moves with the ink
    corners = forward @ np.array([[0, width, 0, width], [0, 0, height, height]], dtype=np.float64)
    margin = x_height  # room for the wobble below
    shift = margin - corners.min(axis=1)
    out_width, out_height = np.ceil(corners.max(axis=1) + shift + margin).astype(int)

    # Where each output pixel comes from: undo a smooth displacement, then undo the affine map.
    ys, xs = np.mgrid[0:out_height, 0:out_width].astype(np.float32)
    elastic = x_height * rng.uniform(0.03, 0.08)
    xs += elastic * smooth_noise(rng, out_height, out_width, x_height)
    ys += elastic * smooth_noise(rng, out_height, out_width, x_height)
    ys += x_height * rng.uniform(0.05, 0.2) * smooth_noise(rng, 1, out_width, 3 * x_height)  # baseline drift
    inverse = np.linalg.inv(forward)
    xs, ys = xs - shift[0], ys - shift[1]
    map_x = (inverse[0, 0] * xs + inverse[0, 1] * ys).astype(np.float32)
    map_y = (inverse[1, 0] * xs + inverse[1, 1] * ys).astype(np.float32)
    return cv2.remap(canvas, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def trim_to_ink(canvas, rng):
    """Tight crop around the ink with a small uneven margin, like IAM's word boxes."""
    return trim_with_offset(canvas, rng)[0]


def trim_with_offset(canvas, rng):
    """trim_to_ink's crop and where its top-left corner lies in canvas, (x, y), to move boxes with it."""
    ys, xs = np.nonzero(canvas > 40)
    margin_top, margin_bottom, margin_left, margin_right = rng.integers(2, 9, 4)
    padded = np.pad(canvas, 10)
    left, top = xs.min() - margin_left, ys.min() - margin_top
    return padded[top + 10 : ys.max() + 11 + margin_bottom, left + 10 : xs.max() + 11 + margin_right], (int(left), int(top))


def ink_on_paper(canvas, style, rng, shade_width=None):
    """Turn the white-on-black ink mask into dark ink on slightly uneven, noisy paper. Returns (image, threshold).
    shade_width: the paper darkens across at most this many pixels' worth of a word's shading (a
    line is several words wide, and a word's shading across a whole line is a dark band)."""
    height, width = canvas.shape
    ink_mask = cv2.GaussianBlur(canvas.astype(np.float32) / 255.0, (0, 0), rng.uniform(0.3, 0.9))
    paper_level = rng.uniform(205, 245)
    slope_y, slope_x = rng.uniform(-0.15, 0.15, 2)
    slope_x *= min(1.0, shade_width / width) if shade_width else 1.0
    paper = paper_level + slope_y * np.arange(height)[:, None] + slope_x * np.arange(width)[None, :]
    paper = paper + rng.normal(0.0, rng.uniform(1.5, 5.0), (height, width))
    ink_level = style["ink"] + rng.normal(0.0, 5.0)
    ink = ink_level + 20.0 * np.abs(smooth_noise(rng, height, width, style["x_height"]))  # uneven pen pressure
    image = paper + (ink - paper) * ink_mask
    return np.clip(np.round(image), 0, 255).astype(np.uint8), int((paper_level + ink_level) / 2)


def render_word(word, style, rng):
    """One word image (uint8, dark on light) and its binarisation threshold."""
    canvas, _ = render_pen(word, style, rng) if style["font"] == "pen" else render_font(word, style)
    return ink_on_paper(trim_to_ink(distort(canvas, style, rng), rng), style, rng)


def iam_tag(word):
    """A stand-in for IAM's part-of-speech tag; nothing in training reads it."""
    if any(char.isdigit() for char in word):
        return "CD"
    return word if not any(char.isalnum() for char in word) else "NN"


def write_form(dataset_dir, form_id, words, seed, form, fonts):
    """Render one form's words into dataset_dir/words/<d01>/<form_id>/ in one writer's style;
    returns its words.txt lines. Its randomness comes from (seed, form) alone, so the set is the
    same whichever process renders which form."""
    rng = np.random.default_rng([seed, form])
    form_dir = os.path.join(dataset_dir, "words", form_id[:3], form_id)
    os.makedirs(form_dir)
    style = random_writer_style(rng, fonts)
    lines, line, word_in_line = [], 0, 0
    x, y = int(rng.integers(300, 450)), int(rng.integers(650, 800))
    for word in words:
        image, graylevel = render_word(word, style, rng)
        height, width = image.shape
        if word_in_line > 0 and x + width > 2200:  # wrap to the next line of the form
            line, word_in_line = line + 1, 0
            x, y = int(rng.integers(300, 450)), y + int(rng.integers(110, 170))
        word_id = f"{form_id}-{line:02d}-{word_in_line:02d}"
        if not cv2.imwrite(os.path.join(form_dir, word_id + ".png"), image):
            raise OSError(f"could not write {os.path.join(form_dir, word_id + '.png')}")
        lines.append(f"{word_id} ok {graylevel} {x} {y} {width} {height} {iam_tag(word)} {word}")
        x += width + int(rng.integers(25, 70))
        word_in_line += 1
    return lines


def draw_words(rng, count):
    """count words of the shipped vocabulary, Zipf-like: "the" often, rare words now and then."""
    vocabulary = load_vocabulary()
    frequency = 1.0 / (np.arange(len(vocabulary)) + 10.0)
    return [vocabulary[i] for i in rng.choice(len(vocabulary), size=count, p=frequency / frequency.sum())]


def render_in_processes(function, jobs, processes=None):
    """[function(*job) for job in jobs], by `processes` processes (default: one per core). Processes, not
    threads: rendering is mostly Python and small NumPy calls that hold the GIL."""
    processes = processes or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count())
    if processes > 1 and len(jobs) > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            return pool.starmap(function, jobs, chunksize=max(1, len(jobs) // (8 * processes)))
    return [function(*job) for job in jobs]


def write_demo_set(dataset_dir, num_words, seed, processes=None):
    """Render `num_words` words into `dataset_dir`: one writer style per form of 30-50 words, IAM ids
    and folders. The words and form sizes are drawn first, then the forms are rendered by
    `processes` processes (default: one per core), each form from its own seed."""
    rng = np.random.default_rng(seed)
    words = draw_words(rng, num_words)
    form_sizes = rng.integers(30, 51, size=num_words // 30 + 1)
    ends = np.minimum(np.cumsum(form_sizes), num_words)
    starts = np.concatenate([[0], ends[:-1]])
    forms_per_folder = max(5, math.ceil(num_words / 30 / 99))  # keeps folder names at 3 characters: d01..d99
    fonts = find_handwriting_fonts()
    jobs = [(dataset_dir, f"d{form // forms_per_folder + 1:02d}-{form % forms_per_folder:03d}", words[start:end],
             seed, form, fonts) for form, (start, end) in enumerate(zip(starts, ends)) if end > start]
    forms = render_in_processes(write_form, jobs, processes)
    with open(os.path.join(dataset_dir, "words.txt"), "w", encoding="utf-8", newline="\n") as file:
        file.write("\n".join(HEADER + [line for lines in forms for line in lines]) + "\n")


# -----------------------------------------------------------------------------
# demo lines: the same words, side by side


def line_word(word, style, rng):
    """One word of a line: its slanted, wobbled white-on-black ink mask, cut to its ink columns, and
    the row of its baseline. The baseline rides in a second channel through distort, so it follows
    the word's slant, tilt and drift and the words of a line can sit on one baseline."""
    canvas, baseline = render_pen(word, style, rng) if style["font"] == "pen" else render_font(word, style)
    above, below = max(0, -baseline), max(0, baseline + 1 - canvas.shape[0])  # ' and - lie above it
    canvas = np.pad(canvas, ((above, below), (0, 0)))
    marker = np.zeros_like(canvas)
    marker[baseline + above] = 255
    ink, marker = np.moveaxis(distort(np.dstack([canvas, marker]), style, rng), 2, 0)
    columns = np.nonzero((ink > 40).any(axis=0))[0]
    crossed = marker.max(axis=0) > 60
    return ink[:, columns[0] : columns[-1] + 1], int(np.median(marker[:, crossed].argmax(axis=0)))


def render_line(words, style, rng):
    """A line image (uint8, dark on light), its binarisation threshold and each word's ink box
    [x, y, w, h]: the words in one writer's style, side by side on one baseline, WORD_GAP of the
    writer's word height apart (ascender to baseline: two x-heights)."""
    pieces = [line_word(word, style, rng) for word in words]
    gaps = [*np.round(rng.uniform(*WORD_GAP, len(words) - 1) * 2 * style["x_height"]).astype(int), 0]
    above = max(baseline for _, baseline in pieces)
    below = max(ink.shape[0] - baseline for ink, baseline in pieces)
    canvas = np.zeros((above + below, sum(ink.shape[1] for ink, _ in pieces) + sum(gaps)), np.uint8)
    boxes, x = [], 0
    for (ink, baseline), gap in zip(pieces, gaps):
        top = above - baseline
        canvas[top : top + ink.shape[0], x : x + ink.shape[1]] = ink
        rows = np.nonzero((ink > 40).any(axis=1))[0]
        boxes.append((x, top + rows[0], ink.shape[1], rows[-1] - rows[0] + 1))
        x += ink.shape[1] + gap
    line, (left, top) = trim_with_offset(canvas, rng)
    image, graylevel = ink_on_paper(line, style, rng, shade_width=200)
    return image, graylevel, [[int(bx - left), int(by - top), int(w), int(h)] for bx, by, w, h in boxes]


def write_line(dataset_dir, index, words, seed, fonts):
    """Render line `index` into dataset_dir/images/ in its own writer's style; returns (its labels.csv
    row, its word boxes). Its randomness comes from (seed, index) alone, as a form's does."""
    rng = np.random.default_rng([seed, index])
    image, _, boxes = render_line(words, random_writer_style(rng, fonts), rng)
    image_path = f"images/{index:05d}.png"
    if not cv2.imwrite(os.path.join(dataset_dir, image_path), image):
        raise OSError(f"could not write {os.path.join(dataset_dir, image_path)}")
    return (image_path, " ".join(words)), boxes


def write_demo_lines(dataset_dir, num_lines, seed, processes=None):
    """Render `num_lines` lines of WORDS_PER_LINE words into dataset_dir: labels.csv (image_path,label),
    images/ and boxes.json ({image file name: [[x, y, w, h] of each word, in order]})."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(WORDS_PER_LINE[0], WORDS_PER_LINE[1] + 1, num_lines)
    words = draw_words(rng, int(sizes.sum()))
    ends = np.cumsum(sizes)
    fonts = find_handwriting_fonts()
    os.makedirs(os.path.join(dataset_dir, "images"))
    jobs = [(dataset_dir, index, words[end - size : end], seed, fonts) for index, (size, end) in enumerate(zip(sizes, ends))]
    lines = render_in_processes(write_line, jobs, processes)
    write_csv(os.path.join(dataset_dir, "labels.csv"), ["image_path", "label"], [row for row, _ in lines])
    write_json({os.path.basename(row[0]): boxes for row, boxes in lines}, os.path.join(dataset_dir, "boxes.json"))


def read_marker(dataset_dir):
    try:
        with open(os.path.join(dataset_dir, MARKER_NAME), encoding="utf-8") as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def is_demo_set(dataset_dir):
    """True for a folder this script made (finished or not), so replacing it cannot delete anything else."""
    if os.path.exists(os.path.join(dataset_dir, MARKER_NAME)):
        return True
    try:
        with open(os.path.join(dataset_dir, "words.txt"), encoding="utf-8") as file:
            return file.readline().startswith("# Demo_Words:")
    except (OSError, UnicodeDecodeError):
        return False


def generate_demo_words(dataset_dir: str = DEMO_DIR, num_words: int = 3000, seed: int = 42) -> str:
    """Writes (or reuses when already complete with the same num_words and seed) the demo set; returns dataset_dir."""
    if num_words < 1:
        raise ValueError(f"num_words must be at least 1, got {num_words}")
    return build_once(dataset_dir, {"num_words": num_words, "seed": seed},
                      lambda build_dir: write_demo_set(build_dir, num_words, seed), num_words, "words")


def generate_demo_lines(dataset_dir: str = DEMO_LINES_DIR, num_lines: int = 3000, seed: int = 42) -> str:
    """Writes (or reuses when already complete with the same num_lines and seed) the demo lines:
    labels.csv, images/ and boxes.json (each line's word boxes); returns dataset_dir."""
    if num_lines < 1:
        raise ValueError(f"num_lines must be at least 1, got {num_lines}")
    return build_once(dataset_dir, {"num_lines": num_lines, "seed": seed},
                      lambda build_dir: write_demo_lines(build_dir, num_lines, seed), num_lines, "lines")


def build_once(dataset_dir, parameters, write, count, noun):
    """Runs write(build_dir) in a folder beside dataset_dir and renames it to dataset_dir when complete,
    so an interrupted run never looks complete; reuses dataset_dir when its marker holds the same
    parameters. count and noun ("words", "lines") are for the messages."""
    if read_marker(dataset_dir) == parameters:
        print(f"Reusing the demo set in {dataset_dir} ({count} {noun}, seed {parameters['seed']})")
        return dataset_dir
    if os.path.isdir(dataset_dir) and os.listdir(dataset_dir) and not is_demo_set(dataset_dir):
        raise SystemExit(f"{dataset_dir} exists and is not a demo set made by demo_words.py: delete it or pick another --dataset-dir")
    for leftover in glob.glob(glob.escape(dataset_dir) + ".tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    build_dir = f"{dataset_dir}.tmp-{os.getpid()}"
    try:
        os.makedirs(build_dir)
    except OSError as error:
        raise SystemExit(f"Cannot create {build_dir} ({error.strerror}): pick a writable --dataset-dir") from error

    print(f"Writing {count} demo {noun} (seed {parameters['seed']}) to {dataset_dir} ...")
    start = time.perf_counter()
    try:
        write(build_dir)
        with open(os.path.join(build_dir, MARKER_NAME), "w", encoding="utf-8") as file:
            json.dump(parameters, file)
        shutil.rmtree(dataset_dir, ignore_errors=True)  # an unfinished set or one with other parameters
        os.rename(build_dir, dataset_dir)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    print(f"Wrote {count} {noun} to {dataset_dir} in {time.perf_counter() - start:.1f} s")
    return dataset_dir


def main():
    parser = argparse.ArgumentParser(description="Generate the offline demo word set in the IAM words layout.")
    parser.add_argument("--dataset-dir", help=f"where to write it (default: {DEMO_DIR}, with --lines {DEMO_LINES_DIR})")
    parser.add_argument("--num-words", type=int, default=3000, help="how many word images (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="same seed, same images (default: %(default)s)")
    parser.add_argument("--lines", action="store_true", help="write demo lines instead (labels.csv, images/, "
                        "boxes.json); --num-words then counts lines")
    args = parser.parse_args()
    try:
        if args.lines:
            generate_demo_lines(args.dataset_dir or DEMO_LINES_DIR, args.num_words, args.seed)
        else:
            generate_demo_words(args.dataset_dir or DEMO_DIR, args.num_words, args.seed)
    except ValueError as error:
        parser.error(str(error))


if __name__ == "__main__":
    main()
