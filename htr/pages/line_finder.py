"""Find the text lines of a page with a small trained network (onnxruntime and OpenCV alone).

    from htr.pages.line_finder import load_line_finder, find_lines_with_model
    session = load_line_finder("assets/starting_model/line_finder.onnx")
    lines = find_lines_with_model(session, bgr_image)   # [{"box", "polygon", "baseline"}, ...]

The network (htr.pages.train_line_finder trains it) sees the page grey, shrunk to WORKING_SIZE
pixels on its long side, and marks two maps, as kraken's and dhSegment's segmenters do:

- the core of each line: the middle of its band (its x-height, roughly), thin enough that two
  lines' cores never touch, so each piece of core is one line, written across or upright;
- the line's whole region: its letters with their ascenders and descenders.

Each piece of core is a line; the region's pixels go to the nearest core (a distance transform
labelled by the cores), and the line's box and polygon enclose them. The network learns from the
transcriptions which writing is a line to read: a letterhead, a stamp or a clerk's note that is
never transcribed is not marked, which the classical finder (htr.pages.lines) cannot know.

find_page_lines is what read_page uses: the network's lines, or the classical finder's where the
two agree (classical_agrees) with the network's lines it missed, or the classical finder's alone
when assets/starting_model/ has no line_finder.onnx.
"""
import functools
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from htr import ASSETS_DIR
from htr.pages.compose import box_iou, box_overlap
from htr.pages.lines import find_text_lines

WORKING_SIZE = 640  # pixels on the page's long side the network sees (a line is about 20 px tall there)
STRIDE = 16  # the network halves the page four times: its input is padded to a multiple of this
CORE_LEVEL, REGION_LEVEL = 0.5, 0.5  # a pixel is core or region where the network is at least this sure
SMALLEST_CORE = 0.2  # a piece of core smaller than this share of the page's median one is a speck
BUNDLED = os.path.join(ASSETS_DIR, "starting_model", "line_finder.onnx")  # shipped with the starting model
ONE_CORE_EACH, CORES_HELD = 0.9, 0.96  # classical_agrees: shares of classical lines and of core pixels


@functools.lru_cache(maxsize=1)
def bundled_line_finder():
    """The session of assets/starting_model/line_finder.onnx, loaded once; None where it is not there."""
    return load_line_finder(BUNDLED) if os.path.isfile(BUNDLED) else None


def find_page_lines(image):
    """BGR or grey uint8 page -> its text lines as find_text_lines gives them, from the better
    finder for the page. The classical finder's boxes fit the ink tightly, and it keeps a short line
    of its own ("Sir"): on regular pages like the George Washington letterbook it finds more lines
    than the network (F1 0.991 against 0.964 on GW 300-304). The network knows which writing is
    transcribed and finds margin notes and upright lines apart (Poilus, unseen writers: F1 0.932
    against 0.668). So where the classical lines tell the network's story (classical_agrees) they
    are taken, with the network's lines they miss (lines_missed), else the network's. The classical
    finder runs in a second thread while the network runs (OpenCV, NumPy and onnxruntime let go of
    Python's lock), so the page costs about the time of the slower of the two."""
    session = bundled_line_finder()
    if session is None:
        return find_text_lines(image)
    with ThreadPoolExecutor(max_workers=1) as pool:
        classical = pool.submit(find_text_lines, image)
        gray, scale = working_page(image)
        core, region = line_maps(session, gray)
        cores = line_cores(core >= CORE_LEVEL)
        classical = classical.result()
    network = lines_from_maps(cores, region >= REGION_LEVEL, scale)
    if classical_agrees(classical, cores, scale):
        for line in lines_missed(network, classical):  # each in its place, the classical order kept
            classical.insert(next((i for i, other in enumerate(classical) if top_to_bottom(other) > top_to_bottom(line)),
                                  len(classical)), line)
        return classical
    return network


def lines_missed(network, classical):
    """The network's lines the classical finder has no line for: none matches it (IoU >= 0.5) and
    none lies mostly within it. On a page where the two agree, they are what the classical finder
    missed (a short line in a margin, faint writing); a network line that joins two classical lines
    holds them both, and stays out."""
    return [line for line in network
            if not any(box_iou(line["box"], other["box"]) >= 0.5
                       or box_overlap(line["box"], other["box"]) >= 0.5 * max(other["box"][2] * other["box"][3], 1)
                       for other in classical)]


def top_to_bottom(line):
    """The order lines are read in: by the height of their middle, then from the left."""
    return line["box"][1] + line["box"][3] / 2, line["box"][0]


def classical_agrees(lines, cores, scale):
    """Whether the classical finder's lines (page pixels) and the network's cores (bool, working
    size) are one page's lines alike: ONE_CORE_EACH of the lines hold exactly one piece of core
    (most of its pixels in their box: a line the network does not see as one, writing it leaves,
    two lines the classical finder joined, all fail) and CORES_HELD of the core pixels lie in
    their boxes (what the classical finder missed). Tuned on the develop pages (Poilus develop, GW
    270-279) and the GW validation pages 300-304: all fifteen GW pages agree, 12 of the 136 Poilus
    develop pages."""
    count, labels = cv2.connectedComponents(cores.astype(np.uint8), connectivity=8)
    if not lines or count <= 1:
        return False
    owner = np.full(cores.shape, -1)
    for number, line in enumerate(lines):
        x, y, w, h = line["box"]
        owner[int(y / scale[1]):int((y + h) / scale[1]) + 1, int(x / scale[0]):int((x + w) / scale[0]) + 1] = number
    held = np.zeros(len(lines), int)
    for label in range(1, count):
        boxes = owner[labels == label]
        numbers, pixels = np.unique(boxes[boxes >= 0], return_counts=True)
        if len(numbers) and pixels.max() >= 0.5 * len(boxes):
            held[numbers[pixels.argmax()]] += 1
    return np.mean(held == 1) >= ONE_CORE_EACH and np.mean(owner[cores] >= 0) >= CORES_HELD


def load_line_finder(path):
    """The onnxruntime session of a line finder's ONNX file (two threads: the page reading's cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def network_input(gray):
    """Grey page at the working size -> the network's input: float32, the paper near 0 and ink
    positive, in units of the page's own spread of grey (scans and photos differ in contrast)."""
    darkness = np.median(gray) - gray.astype(np.float32)
    return darkness / max(float(darkness.std()), 1.0)


def working_page(image):
    """BGR or grey page -> (grey page WORKING_SIZE px on its long side, (x scale, y scale) back)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    scale = WORKING_SIZE / max(gray.shape)
    size = max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale))
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return small, (gray.shape[1] / small.shape[1], gray.shape[0] / small.shape[0])


def line_maps(session, gray):
    """Grey working page -> (core, region) probability maps of its size, from the network."""
    height, width = gray.shape
    padded = np.zeros((-(-height // STRIDE) * STRIDE, -(-width // STRIDE) * STRIDE), np.float32)
    padded[:height, :width] = network_input(gray)
    output = session.run(None, {session.get_inputs()[0].name: padded[None, :, :, None]})[0][0]
    return output[:height, :width, 0], output[:height, :width, 1]


def find_lines_with_model(session, image):
    """BGR or grey uint8 page -> its text lines, top to bottom, as htr.pages.lines.find_text_lines
    gives them: {"box": [x, y, w, h], "polygon", "baseline"} in pixels of `image`."""
    gray, scale = working_page(image)
    core, region = line_maps(session, gray)
    return lines_from_maps(line_cores(core >= CORE_LEVEL), region >= REGION_LEVEL, scale)


def line_cores(core):
    """The core mask (bool) without its specks (SMALLEST_CORE)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(core.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if not len(areas):
        return np.zeros(core.shape, bool)
    return np.r_[False, areas >= SMALLEST_CORE * np.median(areas)][labels]


def lines_from_maps(cores, region, scale):
    """Core (line_cores') and region masks (bool, working size) -> the lines, top to bottom, in
    page pixels."""
    if not cores.any():
        return []
    # Every pixel's nearest core: labels of the zeros' connected components, i.e. of the cores.
    _, nearest = cv2.distanceTransformWithLabels((~cores).astype(np.uint8), cv2.DIST_L2, 3,
                                                 labelType=cv2.DIST_LABEL_CCOMP)
    owner = np.where(region | cores, nearest, 0)
    lines = []
    for label in np.unique(nearest[cores]):
        line = describe_line(attached(owner == label, cores & (nearest == label)), cores & (nearest == label), scale)
        if line is not None:
            lines.append(line)
    return sorted(lines, key=top_to_bottom)


def attached(mask, core):
    """The parts of a line's region (bool) that touch its core: a patch of region beyond a gap
    (writing the network marked but gave no core, e.g. untranscribed) is no part of the line."""
    ys, xs = np.nonzero(mask)
    window = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
    count, parts = cv2.connectedComponents(mask[window].astype(np.uint8), connectivity=8)
    touching = np.zeros(count, bool)
    touching[parts[core[window]]] = True
    touching[0] = False
    joined = np.zeros_like(mask)
    joined[window] = touching[parts]
    return joined


def describe_line(mask, core, scale):
    """One line's region and core (bool, working size) -> its box, polygon (the region's outline)
    and baseline (the bottom of its core, column by column, across; its middle, upright) in page
    pixels; None for a region too small to outline."""
    scale_x, scale_y = scale
    ys, xs = np.nonzero(mask)
    left, top, right, bottom = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    box = [int(left * scale_x), int(top * scale_y), int(np.ceil(right * scale_x) - int(left * scale_x)),
           int(np.ceil(bottom * scale_y) - int(top * scale_y))]
    contours, _ = cv2.findContours(mask[top:bottom, left:right].astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    outline = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 1.0, True).reshape(-1, 2) + [left, top]
    if len(outline) < 3:
        return None
    cy, cx = np.nonzero(core)
    if np.ptp(cx) >= np.ptp(cy):  # written across: the core's lowest pixel in a few columns
        edges = np.linspace(cx.min(), cx.max() + 1, min(12, np.ptp(cx) + 2))
        column = np.clip(np.searchsorted(edges, cx, side="right") - 1, 0, len(edges) - 2)
        lowest = np.full(len(edges) - 1, -1.0)
        np.maximum.at(lowest, column, cy + 1.0)
        middles = (edges[:-1] + edges[1:]) / 2
        baseline = np.c_[middles, lowest][lowest >= 0]
    else:  # upright: along its middle, bottom to top
        baseline = np.array([[np.median(cx), cy.max() + 1.0], [np.median(cx), float(cy.min())]])
    return {"box": box,
            "polygon": [[round(float(x * scale_x)), round(float(y * scale_y))] for x, y in outline],
            "baseline": [[round(float(x * scale_x)), round(float(y * scale_y))] for x, y in baseline]}
