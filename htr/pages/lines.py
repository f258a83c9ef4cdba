"""Find the text lines of a scanned or photographed page, fast, with OpenCV and NumPy alone.

    from htr.pages.lines import find_text_lines
    lines = find_text_lines(bgr_image)   # [{"box": [x, y, w, h], "polygon": [[x, y], ...], "baseline": [[x, y], ...]}, ...]

Lines come top to bottom, in pixels of the input image. The page is worked on at most
WORKING_SIZE pixels on its long side (a letter of a scanned page is still 8 or more pixels tall
there) and the lines are mapped back.

1. Ink: the page is flattened against its paper (htr.pages.segmentation's flatten: toned paper,
   uneven light) and binarised below Otsu's threshold (FAINT_INK: a lighter ink's words, the thin
   ends of strokes, are still ink); the rules of ruled paper and forms, straight and long, go.
2. What is not writing goes: specks, and marks far taller than the page's letters or touching the
   page's edge and large (the dark border around a scanned page, the book's edge, a stamp's frame),
   but of a border or a column's rule only its straight parts: writing touching it stays.
3. Skew and lines, as segmentation.find_words finds them: the deskewed ink blurred much wider than
   tall, each line's core is its density ridge; every ink component goes to the line whose core it
   is in, one in two cores is split where the strokes meet.
4. Each line's box encloses its ink; its polygon follows the top and bottom of its ink, column by
   column; its baseline the bottom of its x-height band.
"""
import cv2
import numpy as np

from htr.pages.segmentation import (MIN_INK_CONTRAST, estimate_skew, flatten, give_loose_pieces, ink_pieces,
                                    rotation_onto_canvas, split_along_ink, stroke_width)

WORKING_SIZE = 1000  # pixels on the long side the lines are found at (smaller pages are not enlarged)
FAINT_INK = 0.65  # ink is darker than this share of Otsu's threshold between paper and ink (faint strokes too)
TALLEST_LETTER = 6  # a mark taller than this many of the page's median letter heights is not writing
RIDGE_LEVEL = 0.25  # a line's ridge is at least this share of the page's densest blurred ink (faint lines too)
TRACK_STEP = 0.2  # a line's track moves at most this many line pitches up or down from one column to the next
NARROWEST = 2  # a line is at least this many times as wide as the page's lines are tall: less is a stamp, a number, a mark
SHORT_LINE_HEIGHT = (0.75, 1.5)  # a line narrower than NARROWEST is this many of the page's line heights tall
STROKE_BAND = 0.15  # a line's ink within this many pitches of its track (90% of it) is one stroke: an underline
FLATTEST = 0.5  # a line of writing is at least this many pitches tall (with its ascenders and descenders)
REACH = (0.7, 0.6)  # a line's ink reaches at most this many pitches above and below its track
LINE_GAP = 6  # pieces of a line at the same height at most this many line pitches apart are one line
EDGE_MARK = 3  # a mark touching the page's edge and this many letters tall (or 10 times as wide) is the border


def find_text_lines(image):
    """BGR or grey uint8 image -> its text lines, top to bottom (see the module's docstring)."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    scale = min(1.0, WORKING_SIZE / max(gray.shape))
    small = cv2.resize(gray, (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else gray
    scale_xy = gray.shape[1] / small.shape[1], gray.shape[0] / small.shape[0]
    ink, pen, angle = writing_ink(small)
    if ink is None:
        return []
    _, _, keep, ys, xs, component = ink_pieces(ink, pen)
    if not len(ys):
        return []
    rotation, (out_w, out_h) = rotation_onto_canvas(small.shape[1], small.shape[0], angle)
    xr = rotation[0, 0] * xs + rotation[0, 1] * ys + rotation[0, 2]
    yr = rotation[1, 0] * xs + rotation[1, 1] * ys + rotation[1, 2]
    col, row = np.clip(np.round(xr).astype(int), 0, out_w - 1), np.clip(np.round(yr).astype(int), 0, out_h - 1)
    ink_rotated = np.zeros((out_h, out_w), np.float32)
    ink_rotated[row, col] = 1
    pitch = line_pitch(ink_rotated)
    tracks = track_lines(ink_rotated, pitch)
    if not tracks:
        return []
    cores = np.zeros((out_h, out_w), np.int32)
    for number, track in enumerate(tracks, start=1):
        draw_core(cores, track, number, pitch)
    line_of_pixel = assign_components(xs, ys, cores[row, col] - 1, component, keep, pen, len(tracks), small.shape)
    back = cv2.invertAffineTransform(rotation)
    lines = []
    for line in np.argsort([np.median(track[:, 1]) for track in tracks]):
        mine = line_of_pixel == line
        if mine.sum() < pitch * pen:  # less is not a letter's ink: noise a track went through
            continue
        offsets = yr[mine] - np.interp(xr[mine], tracks[line][:, 0], tracks[line][:, 1])
        if np.ptp(np.percentile(offsets, [5, 95])) >= STROKE_BAND * pitch:  # less is one stroke: an underline
            found = describe_line(xs[mine], ys[mine], xr[mine], yr[mine], tracks[line], pitch, back, scale_xy)
            _, _, width, height = found["box"]
            if height >= FLATTEST * pitch * scale_xy[1] and width >= 0.6 * height:  # not a rule's remains, a page's edge
                lines.append(found)
    return lines_of_writing(lines)


def lines_of_writing(lines):
    """The finds that are lines of writing: as wide as NARROWEST line heights (less is a stamp, a
    number, a mark), or a short line of its own (one word, "Sir"): at least a line height wide, about
    as tall as the page's lines (SHORT_LINE_HEIGHT: a flatter find is a number's or a mark's remains),
    alone on its rows, within the text's columns and not above the text."""
    if not lines:
        return []
    line_height = np.median([line["box"][3] for line in lines])
    wide = [line for line in lines if line["box"][2] >= NARROWEST * line_height]
    if not wide:
        return []
    text_left = min(line["box"][0] for line in wide)
    text_right = max(line["box"][0] + line["box"][2] for line in wide)

    def own_line(line):
        x, y, w, h = line["box"]
        if w >= NARROWEST * line_height:
            return True
        low, high = SHORT_LINE_HEIGHT
        if w < line_height or not low * line_height <= h <= high * line_height:
            return False
        if x < text_left or x + w > text_right:
            return False
        if y < min(other["box"][1] for other in wide):  # above the text: a letterhead's number, a stamp
            return False
        beside = [other for other in wide if min(y + h, other["box"][1] + other["box"][3]) - max(y, other["box"][1]) > 0.5 * h]
        return not beside
    return [line for line in lines if own_line(line)]


def writing_ink(gray):
    """Grey page -> (ink mask of what may be writing, pen width, skew in degrees), or Nones where
    there is no ink. Marks touching the page's edge and large (the dark border around a scan, a
    book's edge) go first, as they would spoil the pen width and the skew; then the rules."""
    darkness = flatten(gray)
    level = np.round(cv2.medianBlur(darkness, 3) * 255).astype(np.uint8)
    otsu, _ = cv2.threshold(level, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    all_ink = level > max(FAINT_INK * otsu, MIN_INK_CONTRAST * 255)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(all_ink.astype(np.uint8), connectivity=8)
    border = page_border(stats, gray.shape)
    if border.any():  # Otsu's threshold again, on the page alone: a black border makes it miss grey ink
        otsu, _ = cv2.threshold(level[~border[labels]].reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        all_ink = border[labels] | (level > max(FAINT_INK * otsu, MIN_INK_CONTRAST * 255))
        count, labels, stats, _ = cv2.connectedComponentsWithStats(all_ink.astype(np.uint8), connectivity=8)
    if count <= 1:
        return None, None, None
    size = max(gray.shape) / 40  # about a line of writing at the working size
    border = page_border(stats, gray.shape)
    border |= (stats[:, cv2.CC_STAT_HEIGHT] > 2.5 * size) & (stats[:, cv2.CC_STAT_HEIGHT] > 4 * stats[:, cv2.CC_STAT_WIDTH])
    border[0] = False  # a page's or a column's edge, a vertical rule
    all_ink, edge_marks = writing_off_the_edge(all_ink, border[labels], size)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(all_ink.astype(np.uint8), connectivity=8)
    x, y, w, h, area = (stats[:, index] for index in range(5))
    border = (w > 10 * size) & (w > 8 * h)  # a rule too wavy to be straight
    border[0] = False
    edge = cv2.dilate((border[labels] | edge_marks).astype(np.uint8), np.ones((round(size / 3) | 1,) * 2, np.uint8)) > 0
    beside = np.bincount(labels[edge], minlength=count) > 0.5 * area  # crumbs of an edge, beside it
    border |= beside
    border[0] = True
    ink = all_ink & ~border[labels]
    if not ink.any():
        return None, None, None
    pen = stroke_width(ink)
    ys, xs = np.nonzero(ink)
    angle = estimate_skew(xs[::4].astype(np.float64), ys[::4].astype(np.float64), max(1.0, pen / 2))
    ink &= ~straight_rules(all_ink, pen, angle)
    return ink, stroke_width(ink), angle  # the pen again: a frame's or a rule's thick strokes are gone


def writing_off_the_edge(ink, marks, size):
    """The ink and the marks in it that are the page's border, its edges and column rules (`marks`,
    bool), apart: only their straight parts, EDGE_MARK letters long down or across, and what is left
    of them taller than a line (a border's ragged edge) are the border; writing that touches it (the
    last word of a line squeezed against a column's rule) stays ink. Returns (ink without the
    border, the border)."""
    marks = marks.astype(np.uint8)
    length = max(3, round(EDGE_MARK * size))
    straight = cv2.morphologyEx(marks, cv2.MORPH_OPEN, np.ones((length, 1), np.uint8))
    straight |= cv2.morphologyEx(marks, cv2.MORPH_OPEN, np.ones((1, length), np.uint8))
    straight = (cv2.dilate(straight, np.ones((3, 3), np.uint8)) > 0) & (marks > 0)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(((marks > 0) & ~straight).astype(np.uint8), connectivity=8)
    edge = stats[:, cv2.CC_STAT_HEIGHT] > size  # taller than a line: the edge's own ragged parts
    edge[0] = False
    straight |= edge[labels]
    return ink & ~straight, straight


def page_border(stats, shape):
    """Which ink components (connectedComponentsWithStats' stats) are the dark border around a scan
    or a book's edge: large and touching the page's edge, far taller than writing and solid, or a
    frame around the page."""
    x, y, w, h, area = (stats[:, index] for index in range(5))
    touches_edge = (x <= 1) | (y <= 1) | (x + w >= shape[1] - 1) | (y + h >= shape[0] - 1)
    size = max(shape) / 40  # about a line of writing at the working size
    border = touches_edge & ((h > EDGE_MARK * size) | (w > 10 * EDGE_MARK * size))
    border |= (h > TALLEST_LETTER * size) & (area > 0.3 * w * h)
    border |= (w > shape[1] / 2) & (h > shape[0] / 2)  # a frame around the page
    border[0] = False  # the paper
    return border


def straight_rules(ink, pen, angle):
    """Where the rules of ruled paper, squared paper and forms are in the ink (bool, widened by a
    pen width): straight marks, horizontal along the lines or vertical, a quarter of the page long
    (gaps of a pixel bridged). For finding lines a letter crossing a rule may lose those pixels: it
    stays joined to its line. The page is skewed by `angle` degrees."""
    height, width = ink.shape
    rotation, size = rotation_onto_canvas(width, height, angle)
    marks = cv2.warpAffine(ink.astype(np.uint8), rotation, size, flags=cv2.INTER_NEAREST)
    reach = max(1, round(pen))
    rules = np.zeros_like(marks)
    for along, length in [((1, 0), width // 4), ((0, 1), height // 4)]:
        gap = np.ones((1 + 2 * along[1], 1 + 2 * along[0]), np.uint8)
        line = np.ones((1 + (length - 1) * along[1], 1 + (length - 1) * along[0]), np.uint8)
        rules |= cv2.morphologyEx(cv2.morphologyEx(marks, cv2.MORPH_CLOSE, gap), cv2.MORPH_OPEN, line,
                                  borderType=cv2.BORDER_CONSTANT, borderValue=0)
    if not rules.any():
        return np.zeros(ink.shape, bool)
    rules = cv2.dilate(rules, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    return cv2.warpAffine(rules, cv2.invertAffineTransform(rotation), (width, height), flags=cv2.INTER_NEAREST) > 0


def line_pitch(ink):
    """The distance between lines (pixels), from the autocorrelation of the rows' ink in vertical
    strips: its first peak is one line pitch. The median over the strips that have one."""
    height, width = ink.shape
    pitches = []
    strips = max(1, width // 100)
    for index in range(strips):
        profile = ink[:, index * width // strips:(index + 1) * width // strips].sum(axis=1)
        profile = np.convolve(profile, np.exp(-0.5 * (np.arange(-6, 7) / 2) ** 2), mode="same")
        profile -= profile.mean()
        if not profile.any():
            continue
        lags = np.arange(8, min(height // 3, 200))
        correlation = np.array([np.dot(profile[:-lag], profile[lag:]) for lag in lags]) / np.dot(profile, profile)
        peaks = np.nonzero((correlation[1:-1] > correlation[:-2]) & (correlation[1:-1] >= correlation[2:])
                           & (correlation[1:-1] > 0.1))[0]
        if len(peaks):
            pitches.append(lags[peaks[0] + 1])
    return float(np.median(pitches)) if pitches else max(8.0, height / 40)


def track_lines(ink, pitch):
    """Deskewed ink -> each line's track, an array of (column, row) points along its x-height band.
    The ink blurred much wider than tall makes each line's band a ridge (ascenders and descenders,
    thin and few, fade); in columns a quarter pitch apart, the ridge's rows are the blurred ink's
    maxima within a third of a pitch, and a maximum continues the track nearest in height that
    reached a column at most a pitch and a half back. Tracks that end and start again at the same
    height (a wide gap in a line) are one track."""
    density = cv2.GaussianBlur(ink, (0, 0), sigmaX=0.8 * pitch, sigmaY=0.12 * pitch)
    reach = max(1, round(0.35 * pitch))
    column_max = cv2.dilate(density, cv2.getStructuringElement(cv2.MORPH_RECT, (1, 2 * reach + 1)))
    strong = np.percentile(density, 99)
    if strong <= 0:
        return []
    ridge = (density >= column_max) & (density > RIDGE_LEVEL * strong)
    step = max(1, round(pitch / 4))
    tracks, active = [], []  # every track, [(column, row), ...]; the indices of those still growing
    for column in range(0, ink.shape[1], step):
        rows = np.nonzero(ridge[:, column])[0]
        rows = rows[np.diff(rows, prepend=-2) > 1]  # a flat top counts once
        active = [index for index in active if column - tracks[index][-1][0] <= 1.5 * pitch]
        distance = np.abs(np.array([tracks[index][-1][1] for index in active])[:, None] - rows[None, :])
        close_track, close_row = np.nonzero(distance < TRACK_STEP * pitch)
        taken_tracks, taken_rows = set(), set()
        for pair in np.argsort(distance[close_track, close_row], kind="stable"):  # the closest pairs first
            track, row = close_track[pair], close_row[pair]
            if track not in taken_tracks and row not in taken_rows:
                tracks[active[track]].append((column, rows[row]))
                taken_tracks.add(track)
                taken_rows.add(row)
        for row in range(len(rows)):
            if row not in taken_rows:
                active.append(len(tracks))
                tracks.append([(column, rows[row])])
    tracks = [np.array(track, np.float64) for track in tracks if track[-1][0] - track[0][0] >= pitch]
    return join_tracks(tracks, [band_height(density, track, pitch) for track in tracks], pitch)


def band_height(density, track, pitch):
    """How tall a track's ridge is (pixels): the rows around it where the blurred ink stays above
    half its height on the ridge, the median along the track (about the writing's x-height)."""
    offsets = np.arange(-round(pitch), round(pitch) + 1)
    rows = np.clip(track[:, 1].astype(int)[:, None] + offsets[None, :], 0, density.shape[0] - 1)
    profile = density[rows, track[:, 0].astype(int)[:, None]]
    high = profile >= 0.5 * profile[:, [len(offsets) // 2]]
    middle = len(offsets) // 2
    below = np.cumprod(high[:, middle:], axis=1).sum(axis=1)
    above = np.cumprod(high[:, middle::-1], axis=1).sum(axis=1)
    return float(np.median(above + below - 1))


def join_tracks(tracks, heights, pitch):
    """Tracks one after the other at the same height, at most LINE_GAP pitches apart (or band
    heights, for writing bigger than the page's), joined: each to the nearest in height of those
    that ended before it began (or less than a pitch after: two ridges of one line of big writing
    can overlap). The same height: within 0.3 pitch, or 0.8 of the taller band."""
    order = np.argsort([track[0, 0] for track in tracks], kind="stable")
    joined = []  # [(track, band height), ...]
    for track, height in ((tracks[index], heights[index]) for index in order):
        def offset(entry):
            return abs(np.median(track[:3, 1]) - np.median(entry[0][-3:, 1]))
        candidates = [index for index, (earlier, earlier_height) in enumerate(joined)
                      if -pitch < track[0, 0] - earlier[-1, 0] <= LINE_GAP * max(pitch, 3 * height, 3 * earlier_height)
                      and offset(joined[index]) < max(0.3 * pitch, 0.8 * max(height, earlier_height))]
        if candidates:
            index = min(candidates, key=lambda index: offset(joined[index]))
            points = np.vstack([joined[index][0], track])
            joined[index] = (points[np.argsort(points[:, 0], kind="stable")], max(height, joined[index][1]))
        else:
            joined.append((track, height))
    return [track for track, _ in joined]


def draw_core(cores, track, number, pitch):
    """Draws a track's core, its x-height band (a third of a pitch tall), as `number` into `cores`
    where no other core is."""
    band = np.zeros(cores.shape, np.uint8)
    points = np.round(track).astype(np.int32).reshape(-1, 1, 2)
    cv2.polylines(band, [points], False, 1, thickness=max(1, round(pitch / 3)))
    cores[(band > 0) & (cores == 0)] = number


def assign_components(xs, ys, core_of_pixel, component, keep, pen, lines, shape):
    """The ink pixels (page coordinates, ordered by component), the core each is in (-1: none) ->
    the line of each pixel. A component goes to the line whose core holds its ink; one in several
    cores is split where the strokes meet (segmentation.split_along_ink), one in none goes to the
    line of the nearest ink in one (segmentation.give_loose_pieces)."""
    starts = np.searchsorted(component, np.arange(len(keep) + 1))
    line_of_pixel = np.full(len(xs), -1, np.int64)
    in_core = core_of_pixel >= 0
    centres = np.array([np.median(ys[core_of_pixel == line]) if (core_of_pixel == line).any() else np.inf
                        for line in range(lines)])
    loose = []
    for label in np.nonzero(keep)[0]:
        part = slice(starts[label], starts[label + 1])
        hits = np.bincount(core_of_pixel[part][in_core[part]], minlength=lines)
        big = np.nonzero(hits >= max(pen * pen, 0.1 * hits.sum()))[0] if hits.sum() else []
        if len(big) == 0:
            loose.append(label)
        elif len(big) == 1:
            line_of_pixel[part] = big[0]
        else:
            line_of_pixel[part] = split_along_ink(xs[part], ys[part], core_of_pixel[part], big[np.argsort(centres[big])])
    if loose:
        line_of_pixel = give_loose_pieces(loose, starts, xs, ys, ys.astype(np.float64), line_of_pixel, centres, shape)
    return line_of_pixel


def describe_line(xs, ys, xr, yr, track, pitch, back, scale):
    """One line's ink pixels (working page and deskewed coordinates) and its track -> its box,
    polygon and baseline in pixels of the input image. Ink farther above or below the track than
    a line's ascenders and descenders reach (REACH pitches: a flourish, a stroke of the next line
    the split gave this one) is left out. The polygon's points are the top and bottom of the ink in
    columns two thirds of a pitch wide (deskewed); the baseline follows the track, lowered to the
    bottom of the x-height band (where 80% of a column's ink lies above: descenders are few)."""
    centre = np.interp(xr, track[:, 0], track[:, 1])
    within = (yr >= centre - REACH[0] * pitch) & (yr <= centre + REACH[1] * pitch)
    if within.sum() >= 0.5 * len(xr):
        xs, ys, xr, yr, centre = xs[within], ys[within], xr[within], yr[within], centre[within]
    scale_x, scale_y = scale
    left, top = xs.min() * scale_x, ys.min() * scale_y
    box = [int(left), int(top), int(np.ceil((xs.max() + 1) * scale_x - left)), int(np.ceil((ys.max() + 1) * scale_y - top))]
    column = ((xr - xr.min()) / max(2.0, 2 * pitch / 3)).astype(int)
    order = np.lexsort((yr, column))  # by column, then row
    column, rows, across, centre = column[order], yr[order], xr[order], centre[order]
    starts = np.searchsorted(column, np.unique(column))
    ends = np.r_[starts[1:], len(column)]
    x_left, x_right = np.minimum.reduceat(across, starts), np.maximum.reduceat(across, starts) + 1
    x_pairs = np.c_[x_left, x_right].ravel()
    uppers = np.c_[x_pairs, np.repeat(rows[starts], 2)]
    lowers = np.c_[x_pairs, np.repeat(rows[ends - 1] + 1, 2)]
    lowered = np.median(rows[starts + ((ends - starts) * 0.8).astype(int).clip(max=ends - starts - 1)] - centre[starts])
    along = np.linspace(xr.min(), xr.max() + 1, max(2, len(starts) + 1))
    baseline = np.c_[along, np.interp(along, track[:, 0], track[:, 1]) + lowered]

    def to_page(points):
        page = points @ back[:, :2].T + back[:, 2]
        return [[round(float(px * scale_x)), round(float(py * scale_y))] for px, py in page]
    return {"box": box, "polygon": to_page(np.r_[uppers, lowers[::-1]]), "baseline": to_page(baseline)}
