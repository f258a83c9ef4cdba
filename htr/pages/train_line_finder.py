"""Train the line finder of htr.pages.line_finder on transcribed pages, and export it to ONNX.

    python -m htr.pages.train_line_finder --alto-dir ../shared/data/poilus_alto --out assets/starting_model

Pages: an eScriptorium ALTO export's develop part (the documents the find-lines benchmark does not
measure: it measures every MEASURED_EVERY-th document in sorted order, so those are never trained
on), and George Washington pages (`<page>.json`, their words joined by line number) when given,
for research only: the bundled network (assets/starting_model/line_finder.onnx) saw Poilus alone,
whose licence lets it ship.
Each transcribed line becomes two targets at the working size: its region (its polygon filled) and
its core, a band along its baseline from CORE_BAND's share of the line's thickness above it to the
next (the x-height band, roughly): written across or upright alike, and thin enough that the cores
of two lines never touch (where they would, neither has the pixels). Writing that was never
transcribed is in no target, so the network learns to leave it. The network is a small U-Net, fully
convolutional, trained on random crops (scaled, lighter or darker) for SETTINGS' steps, then
exported with htr.export. Every setting is in SETTINGS.
"""
import argparse
import glob
import json
import os
import sys
import time

import cv2
import numpy as np

from htr.data.xml_pages import XmlError, read_xml_page
from htr.images import UnreadableImage, read_image
from htr.pages.line_finder import STRIDE, network_input, working_page

SETTINGS = {
    "crop": 256,  # pixels square a training crop is at the working size
    "batch": 8,
    "steps": 1500,
    "learning_rate": 2e-3,  # Adam's, decayed along a cosine to 0 over the steps
    "scales": (0.8, 1.25),  # a crop is the page enlarged or shrunk by a factor in this range
    "widths": (16, 32, 48, 64),  # channels of the U-Net's levels (each one halves the page)
    "core_weight": 3.0,  # a core pixel's share of the loss against one outside (cores are few)
    "gw_share": 0.25,  # share of the crops drawn from the George Washington pages, when given (10 of 146 pages)
    "seed": 0,
}
GW_DEVELOP = range(270, 280)  # George Washington pages 300-304 validate the finders: never trained on
MEASURED_EVERY = 5  # benchmarks.quality find-lines measures every 5th document: never trained on
CORE_BAND = (0.05, 0.4)  # a line's core: from this share of its thickness above its baseline, to this


def develop_pages(alto_dir):
    """[(image path, lines), ...] of an ALTO export's develop documents; a line is (polygon,
    baseline or None) in pixels of its image, only the transcribed ones."""
    xml_paths = sorted(glob.glob(os.path.join(alto_dir, "*.xml")))
    documents = sorted({os.path.basename(path).rsplit("-", 1)[0] for path in xml_paths})
    measured = set(documents[::MEASURED_EVERY])
    pages = []
    for xml_path in xml_paths:
        if os.path.basename(xml_path).rsplit("-", 1)[0] in measured:
            continue
        try:
            page = read_xml_page(xml_path)
            image_path = xml_path[:-len(".xml")] + ".jpg"
            height, width = read_image(image_path).shape[:2]
        except (XmlError, UnreadableImage) as e:
            sys.exit(f"error: {xml_path}: {e}; train on an ALTO export with each page's JPEG beside it")
        sx, sy = (width / page["size"][0], height / page["size"][1]) if page["size"] else (1.0, 1.0)
        lines = [(np.array(line["polygon"], float) * (sx, sy),
                  None if not line["baseline"] else np.array(line["baseline"], float) * (sx, sy))
                 for line in page["lines"] if line["text"] and line["polygon"]]
        pages.append((image_path, lines))
    return pages


def gw_training_pages(folder):
    """[(image path, lines), ...] of the George Washington develop pages (GW_DEVELOP: <page>.json
    beside images/<page>.jpg in `folder`): a line's polygon is its words' boxes, its baseline as gw_line
    draws it."""
    pages = []
    for number in GW_DEVELOP:
        json_path = os.path.join(folder, f"{number}.json")
        if not os.path.isfile(json_path):
            sys.exit(f"error: {json_path} is missing; --gw-pages needs pages {GW_DEVELOP[0]}-{GW_DEVELOP[-1]}")
        with open(json_path, encoding="utf-8") as f:
            words = json.load(f)["words"]
        lines = {}
        for word in sorted(words, key=lambda word: word["box"][0]):
            lines.setdefault(word["line"], []).append(word["box"])
        image_path = os.path.join(folder, "images", f"{number}.jpg")
        pages.append((image_path, [gw_line(np.array(boxes, float)) for boxes in lines.values()]))
    return pages


def gw_line(boxes):
    """A George Washington line's word boxes -> (its polygon: the boxes, its baseline: straight, at
    the words' median bottom less a fifth of their median height, below which descenders reach)."""
    x, y, w, h = boxes.T
    level = np.median(y + h) - 0.2 * np.median(h)
    corners = np.stack([np.c_[x, y], np.c_[x + w, y], np.c_[x + w, y + h], np.c_[x, y + h]], axis=1)
    return corners, np.array([[x.min(), level], [(x + w).max(), level]])


def targets(shape, lines, scale):
    """The (core, region) target masks (uint8, `shape`) of a page's lines scaled by `scale`."""
    region = np.zeros(shape, np.uint8)
    cores = np.zeros(shape, np.uint8)
    for polygon, baseline in lines:
        polygons = [part * scale for part in (polygon if polygon.ndim == 3 else [polygon])]
        cv2.fillPoly(region, [np.round(part).astype(np.int32) for part in polygons], 1)
        points = np.vstack(polygons)
        if baseline is None or len(baseline) < 2:
            left, top = points.min(axis=0)
            right, bottom = points.max(axis=0)
            baseline = np.array([[left, top + 0.75 * (bottom - top)], [right, top + 0.75 * (bottom - top)]])
        else:
            baseline = baseline * scale
        direction = baseline[-1] - baseline[0]
        length = max(float(np.hypot(*direction)), 1.0)
        normal = np.array([direction[1], -direction[0]]) / length
        if np.dot(points.mean(axis=0) - baseline.mean(axis=0), normal) < 0:
            normal = -normal  # towards the line's letters
        thickness = sum(cv2.contourArea(part.astype(np.float32)) for part in polygons) / length
        low, high = CORE_BAND
        band = np.zeros(shape, np.uint8)
        centre = baseline + normal * thickness * (low + high) / 2
        cv2.polylines(band, [np.round(centre).astype(np.int32)], False, 1,
                      thickness=max(1, round(thickness * (high - low))))
        cores += band
    return (cores == 1).astype(np.uint8), region


def load_pages(pages):
    """[(image path, lines), ...] -> [(network input, core, region), ...] at the working size."""
    loaded = []
    for image_path, lines in pages:
        gray, (sx, sy) = working_page(read_image(image_path))
        core, region = targets(gray.shape, lines, np.array([1 / sx, 1 / sy]))
        loaded.append((gray, core, region))
    return loaded


def random_crop(page, rng):
    """One training sample from (grey page, core, region): a crop of SETTINGS' size, scaled,
    its contrast and brightness changed; -> (input, target with core and region channels)."""
    gray, core, region = page
    size = SETTINGS["crop"]
    scale = rng.uniform(*SETTINGS["scales"])
    span = min(int(size / scale), *gray.shape)
    top, left = rng.integers(0, gray.shape[0] - span + 1), rng.integers(0, gray.shape[1] - span + 1)
    window = slice(top, top + span), slice(left, left + span)
    out = round(span * scale) // STRIDE * STRIDE
    grey = cv2.resize(gray[window], (out, out), interpolation=cv2.INTER_AREA)
    grey = np.clip(grey.astype(np.float32) * rng.uniform(0.7, 1.2) + rng.uniform(-30, 30), 0, 255)
    target = np.stack([cv2.resize(mask[window], (out, out), interpolation=cv2.INTER_NEAREST)
                       for mask in (core, region)], axis=-1)
    canvas, labels = np.zeros((size, size), np.float32), np.zeros((size, size, 2), np.float32)
    canvas[:out, :out] = network_input(grey.astype(np.uint8))
    labels[:out, :out] = target
    return canvas[..., None], labels


def build_network():
    """The U-Net: (page, 1 channel) -> (page, core and region probabilities). Its first convolution
    halves the page (a line is still 10 px tall), and so does each level after it; the maps come
    out at half the page's size and are enlarged back: a quarter of the work at the full size."""
    import keras
    from keras import layers

    def convolution(x, width, repeat=1, dilation=1, strides=1):
        for _ in range(repeat):
            x = layers.Conv2D(width, 3, strides=strides, padding="same", dilation_rate=dilation, use_bias=False)(x)
            x = layers.ReLU()(layers.BatchNormalization()(x))
        return x

    inputs = keras.Input((None, None, 1), name="page")
    widths = SETTINGS["widths"]
    x, skips = convolution(inputs, widths[0], strides=2), []
    for width in widths[:-1]:
        x = convolution(x, width, repeat=2)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = convolution(convolution(x, widths[-1], dilation=2), widths[-1], dilation=4)  # a wide view: the layout
    for width, skip in zip(widths[-2::-1], skips[::-1]):
        x = convolution(layers.Concatenate()([layers.UpSampling2D()(x), skip]), width)
    maps = layers.UpSampling2D()(layers.Conv2D(2, 1)(x))
    return keras.Model(inputs, layers.Activation("sigmoid")(maps))


def weighted_loss(truth, predicted):
    """Binary cross-entropy of both maps, a core pixel counting SETTINGS' core_weight times."""
    import keras.ops as ops

    predicted = ops.clip(predicted, 1e-6, 1 - 1e-6)
    weights = ops.stack([1 + (SETTINGS["core_weight"] - 1) * truth[..., 0], ops.ones_like(truth[..., 1])], axis=-1)
    cross_entropy = -(truth * ops.log(predicted) + (1 - truth) * ops.log(1 - predicted))
    return ops.mean(weights * cross_entropy)


def train(pages, out_dir, steps=None, gw_pages=()):
    """Trains the network on `pages` and `gw_pages` (load_pages'; SETTINGS' gw_share of the crops
    from the second) and exports it to out_dir/line_finder.onnx."""
    import keras

    from htr.export import export_onnx

    keras.utils.set_random_seed(SETTINGS["seed"])
    rng = np.random.default_rng(SETTINGS["seed"])
    steps = steps or SETTINGS["steps"]
    network = build_network()
    schedule = keras.optimizers.schedules.CosineDecay(SETTINGS["learning_rate"], steps)
    network.compile(optimizer=keras.optimizers.Adam(schedule), loss=weighted_loss)
    began = time.time()
    for step in range(steps):
        sources = [gw_pages if gw_pages and rng.random() < SETTINGS["gw_share"] else pages for _ in range(SETTINGS["batch"])]
        samples = [random_crop(source[rng.integers(len(source))], rng) for source in sources]
        loss = network.train_on_batch(np.stack([x for x, _ in samples]), np.stack([y for _, y in samples]))
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step + 1}/{steps}: loss {float(loss):.4f}, {time.time() - began:.0f} s", flush=True)
    os.makedirs(out_dir, exist_ok=True)
    export_onnx(network, os.path.join(out_dir, "line_finder.onnx"), {"settings": SETTINGS})
    return network


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alto-dir", required=True, help="an eScriptorium ALTO export (page XML beside its JPEG)")
    parser.add_argument("--gw-pages", help="George Washington pages 270-279 to train on too (<page>.json, images/); "
                        "their licence is non-commercial research: a network trained on them is not for assets/")
    parser.add_argument("--out", required=True, help="folder for line_finder.onnx")
    args = parser.parse_args(argv)
    pages, gw_pages = develop_pages(args.alto_dir), gw_training_pages(args.gw_pages) if args.gw_pages else []
    if not pages:
        sys.exit(f"error: {args.alto_dir} has no ALTO pages to train on (*.xml beside *.jpg)")
    print(f"{len(pages) + len(gw_pages)} pages, {sum(len(lines) for _, lines in pages + gw_pages)} lines")
    train(load_pages(pages), args.out, gw_pages=load_pages(gw_pages))


if __name__ == "__main__":
    main()
