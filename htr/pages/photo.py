"""A phone photo of a page made to look like a scan: the sheet found on its background, warped to a
flat upright rectangle, its light evened out to dark ink on near-white paper. Anything else (a scan,
a crop of one word, a photo in which no whole sheet stands out) passes through unchanged, so the
line and word finders see what they were built for either way. NumPy and OpenCV only."""
import cv2
import numpy as np

DETECT_SIDE = 768  # the sheet is looked for on a copy this many pixels on its long side
MIN_SIDE = 64  # an image with a side shorter than this (a word, an empty or broken image) is no photo of a sheet
MIN_SHEET_AREA, MAX_SHEET_AREA = 0.15, 0.97  # a sheet fills this much of the photo: less is a stray patch, more a scan
MIN_CONTRAST = 40  # levels (of the darkest colour channel) between the sheet and what lies around it
MAX_BORDER_TOUCH = 0.05  # a sheet in full view touches at most this share of the photo's edge pixels
EDGE_STEP = 4  # pixels of the downscaled copy either side of a sheet's edge where paper and background are compared
MIN_FILL = 0.93  # the bright region fills its four-cornered outline this well, and it the region
CORNER_ANGLES = (55, 125)  # degrees: each corner of a tilted rectangle, seen in perspective
LIGHT_KERNEL = 0.02  # the paper's light is estimated over squares this share of the sheet's long side
PAPER_LEVEL = 250  # the paper's grey after the light is evened out


def flatten_photo(image):
    """A BGR uint8 image -> (scan-like BGR uint8 image, transform_info).

    When the image is a photo of a whole sheet on a background, the result is the sheet warped to an
    upright rectangle of the proportions it is seen in (its opposite sides averaged; top-left corner
    first, so the photo must be roughly upright, within 45 degrees), in grey, each pixel divided by the paper's light
    around it, so shadows, gradients and colour casts go. transform_info: {"flattened": bool,
    "reason": what was done or why not, "corners": the sheet's corners in the photo (top-left,
    top-right, bottom-right, bottom-left) or None, "homography": the 3x3 matrix mapping points of
    the result to points of `image` (to_photo_points uses it; the identity when nothing was done),
    "size": [width, height] of the result}. Otherwise the image comes back as it is."""
    corners, reason = find_sheet(image)
    if corners is None:
        height, width = image.shape[:2] if getattr(image, "ndim", 0) >= 2 else (0, 0)
        return image, {"flattened": False, "reason": reason, "corners": None,
                       "homography": np.eye(3).tolist(), "size": [width, height]}
    width = int(round((np.linalg.norm(corners[1] - corners[0]) + np.linalg.norm(corners[2] - corners[3])) / 2))
    height = int(round((np.linalg.norm(corners[3] - corners[0]) + np.linalg.norm(corners[2] - corners[1])) / 2))
    flat_corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]]) - 0.5  # the outer edges of the pixels
    homography = cv2.getPerspectiveTransform(flat_corners, np.float32(corners - 0.5))
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    flat = cv2.warpPerspective(grey, homography, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(even_light(flat), cv2.COLOR_GRAY2BGR), {
        "flattened": True, "reason": "a photo of a sheet: warped flat and its light evened out",
        "corners": corners.round(2).tolist(), "homography": homography.tolist(), "size": [width, height]}


def to_photo_points(points, transform_info):
    """Points [[x, y], ...] on flatten_photo's result -> the same points on the photo it was given."""
    points = np.asarray(points, np.float64).reshape(-1, 1, 2)
    return cv2.perspectiveTransform(points, np.asarray(transform_info["homography"], np.float64)).reshape(-1, 2)


def to_photo_box(box, transform_info):
    """An [x, y, w, h] box on flatten_photo's result -> the smallest [x, y, w, h] box on the photo
    holding its four corners (the box itself becomes a four-cornered polygon there)."""
    x, y, w, h = box
    corners = to_photo_points([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], transform_info)
    left, top = np.floor(corners.min(axis=0)).astype(int)
    right, bottom = np.ceil(corners.max(axis=0)).astype(int)
    return [int(left), int(top), int(right - left), int(bottom - top)]


def find_sheet(image):
    """(the sheet's 4 corners in `image` pixels, float64 4x2, top-left first and clockwise, "") or
    (None, why not). The sheet is the largest region bright in every colour on a downscaled copy, with
    the ink closed over; it must stand out from its surroundings, be in full view, and be a convex
    four-cornered shape."""
    if image is None or getattr(image, "size", 0) == 0 or min(image.shape[:2]) < MIN_SIDE:
        return None, "not looked at: too small to hold a sheet"
    small, scale = shrunk(image, DETECT_SIDE)
    if small.ndim == 2:
        small = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    paper = small.min(axis=2)  # paper is bright in every colour; a desk is darker, or coloured (low in blue)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    paper = cv2.medianBlur(cv2.morphologyEx(paper, cv2.MORPH_CLOSE, kernel), 5)
    mask = cv2.threshold(paper, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1]
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    contours = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)[0]
    if not contours:
        return None, "no sheet: nothing bright stands out"
    contour = max(contours, key=cv2.contourArea)
    region = cv2.drawContours(np.zeros_like(mask), [contour], -1, 255, cv2.FILLED) > 0
    reason = sheet_problem(paper, region)
    if reason:
        return None, reason
    corners = four_corners(contour)
    if corners is None:
        return None, "no sheet: the bright region is not four-cornered"
    reason = shape_problem(corners, region)
    if reason:
        return None, reason
    corners = refine_corners(hull_outline(contour), corners)
    reason = edge_problem(paper, corners)
    if reason:
        return None, reason
    return (corners + 0.5) / scale - 0.5, ""  # small pixel centres -> the image's


def sheet_problem(paper, region):
    """Why the bright region is not a sheet lying in full view on a background, or "" if it may be."""
    share = region.mean()
    if not MIN_SHEET_AREA <= share <= MAX_SHEET_AREA:
        return f"no sheet on a background: the brightest region covers {share:.0%} of the image"
    edge = np.concatenate([region[0], region[-1], region[:, 0], region[:, -1]])
    if edge.mean() > MAX_BORDER_TOUCH:
        return "no sheet in full view: the bright region runs off the image's edges"
    contrast = float(paper[region].mean() - paper[~region].mean())
    if contrast < MIN_CONTRAST:
        return f"no sheet: the bright region stands out by only {contrast:.0f} levels"
    return ""


def four_corners(contour):
    """The convex hull of the contour simplified to a polygon, clockwise from the top-left, or None if
    it has more than 8 corners. A polygon of 5 to 8 is a sheet with corners cut off (by a shadow, a
    dark border, a fold): its shortest side is dropped, its neighbours extended to meet, until 4 are left."""
    hull = cv2.convexHull(contour)
    approx = cv2.approxPolyDP(hull, 0.015 * cv2.arcLength(hull, True), True).reshape(-1, 2).astype(np.float64)
    if not 4 <= len(approx) <= 8:
        return None
    approx = widest_polygon(approx, hull.reshape(-1, 2).astype(np.float64))
    while len(approx) > 4:
        shortest = int(np.argmin(np.linalg.norm(np.roll(approx, -1, axis=0) - approx, axis=1)))
        approx = np.roll(approx, -shortest, axis=0)  # the shortest side runs from approx[0] to approx[1]
        crossing = line_crossing((approx[0], approx[0] - approx[-1]), (approx[1], approx[2] - approx[1]))
        if crossing is None:
            return None
        approx = np.vstack([crossing, approx[2:]])
    centre = approx.mean(axis=0)
    approx = approx[np.argsort(np.arctan2(approx[:, 1] - centre[1], approx[:, 0] - centre[0]))]  # clockwise (y down)
    return np.roll(approx, -int(np.argmin(approx.sum(axis=1))), axis=0)


def widest_polygon(polygon, hull):
    """The polygon with each corner moved, in turn, to the hull's point that makes its area largest:
    the simplified hull's corners lie somewhere near the sheet's, these on them."""
    polygon = polygon.copy()
    orientation = np.sign(np.sum(polygon[:, 0] * np.roll(polygon[:, 1], -1) - np.roll(polygon[:, 0], -1) * polygon[:, 1]))
    for _ in range(2):
        for index in range(len(polygon)):
            before, after = polygon[index - 1], polygon[(index + 1) % len(polygon)]
            # the shoelace terms that involve the moved corner p: cross(before, p) + cross(p, after)
            gain = (before[0] * hull[:, 1] - before[1] * hull[:, 0]) + (hull[:, 0] * after[1] - hull[:, 1] * after[0])
            polygon[index] = hull[int(np.argmax(orientation * gain))]
    return polygon


def shape_problem(corners, region):
    """Why the four corners are not a sheet seen in perspective (convex, corner angles near 90
    degrees, the bright region filling the outline), or "" if they are."""
    angles = []
    for index in range(4):
        before, after = corners[index - 1] - corners[index], corners[(index + 1) % 4] - corners[index]
        cosine = before @ after / max(np.linalg.norm(before) * np.linalg.norm(after), 1e-9)
        angles.append(np.degrees(np.arccos(np.clip(cosine, -1, 1))))
    if not cv2.isContourConvex(np.float32(corners).reshape(-1, 1, 2)) or not all(
            CORNER_ANGLES[0] <= angle <= CORNER_ANGLES[1] for angle in angles):
        return "no sheet: the bright region's corners are not a rectangle's in perspective"
    outline = cv2.fillConvexPoly(np.zeros(region.shape, np.uint8), np.int32(np.round(corners)), 1) > 0
    overlap = (outline & region).sum()
    if overlap < MIN_FILL * outline.sum() or overlap < MIN_FILL * region.sum():
        return "no sheet: the bright region does not fill a four-cornered outline"
    return ""


def hull_outline(contour):
    """Points every pixel along the contour's convex hull: the sheet's outline, bridging notches where
    dark ink or a border touches its edge, and a curled edge's sag."""
    hull = cv2.convexHull(contour).reshape(-1, 2).astype(np.float64)
    points = [np.linspace(start, end, max(2, int(np.linalg.norm(end - start))), endpoint=False)
              for start, end in zip(hull, np.roll(hull, -1, axis=0))]
    return np.concatenate(points)


def edge_problem(paper, corners):
    """Why the four sides are not a sheet's edges, or "" if they are: along most of each side the
    paper must be brighter just inside than just outside. A side that runs along a shadow's soft
    edge, or through the desk, is not an edge, and a warp along it would cut the page."""
    height, width = paper.shape
    centre = corners.mean(axis=0)
    for index in range(4):
        start, end = corners[index], corners[(index + 1) % 4]
        normal = np.array([end[1] - start[1], start[0] - end[0]]) / max(np.linalg.norm(end - start), 1e-9)
        normal *= np.sign(normal @ (start - centre))  # pointing out of the sheet
        along = start + np.linspace(0.1, 0.9, 24)[:, None] * (end - start)
        levels = []
        for offset in (-EDGE_STEP, EDGE_STEP):
            x, y = (along + offset * normal).round().astype(int).T
            levels.append(paper[y.clip(0, height - 1), x.clip(0, width - 1)].astype(int))
        if np.median(levels[0] - levels[1]) < MIN_CONTRAST / 2:
            return "no sheet: a side of the bright region is no sharp edge (a shadow's, or the desk's)"
    return ""


def refine_corners(points, corners):
    """Each corner as the crossing of lines fitted to the outline along its two sides, near it (from
    10% to 40% of each side: past a rounded, dog-eared or shadowed tip, short of a curled middle):
    sub-pixel, and a cut-off corner comes back."""
    sides = []
    for index in range(4):
        start, end = corners[index], corners[(index + 1) % 4]
        direction = (end - start) / max(np.linalg.norm(end - start), 1e-9)
        along = (points - start) @ direction / max(np.linalg.norm(end - start), 1e-9)
        across = np.abs((points - start) @ np.array([-direction[1], direction[0]]))
        near_side = across < 0.05 * np.linalg.norm(end - start) + 3
        sides.append([points[near_side & (along > 0.1) & (along < 0.4)],  # next to `start`
                      points[near_side & (along > 0.6) & (along < 0.9)]])  # next to `end`
    refined, reach = corners.copy(), 0.25 * min(np.linalg.norm(corners - np.roll(corners, 1, axis=0), axis=1))
    for index in range(4):
        before, after = sides[index - 1][1], sides[index][0]  # the side ending here, the side starting here
        if len(before) >= 5 and len(after) >= 5:
            crossing = line_crossing(fitted_line(before), fitted_line(after))
            if crossing is not None and np.linalg.norm(crossing - corners[index]) < reach:
                refined[index] = crossing
    return refined


def fitted_line(points):
    """A line through points, robust to a few strays (Huber): (a point on it, its unit direction)."""
    vx, vy, x, y = cv2.fitLine(np.float32(points), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
    return np.array([x, y], np.float64), np.array([vx, vy], np.float64)


def line_crossing(first, second):
    """Where two (point, direction) lines cross, or None for (nearly) parallel ones."""
    (p, d), (q, e) = first, second
    determinant = d[0] * -e[1] + e[0] * d[1]
    if abs(determinant) < 1e-6:
        return None
    t = ((q - p)[0] * -e[1] + e[0] * (q - p)[1]) / determinant
    return p + t * d


def even_light(grey):
    """A grey page divided by its paper's light: the light is the brightest level around each pixel
    (over squares wider than a pen stroke, so the ink drops out), smoothed, found on a quarter-size
    copy for speed. Shadows and gradients go; ink stays as dark against the paper as it was."""
    small = shrunk(grey, max(grey.shape) // 4)[0]
    size = max(3, int(LIGHT_KERNEL * max(small.shape)) | 1)
    light = cv2.dilate(small, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)))
    light = cv2.resize(np.maximum(cv2.blur(light, (size, size)), 1), grey.shape[::-1], interpolation=cv2.INTER_LINEAR)
    return cv2.divide(grey, light, scale=PAPER_LEVEL)


def shrunk(image, side):
    """(a copy of `image` at most `side` pixels on its long side, each pixel the mean of a square
    block, the scale of the copy to the image). Images that small come back as they are."""
    height, width = image.shape[:2]
    factor = -(-max(height, width) // max(side, 1))
    if factor <= 1:
        return image, 1.0
    whole = image[:height - height % factor, :width - width % factor]  # whole blocks: OpenCV's fast path
    return cv2.resize(whole, (width // factor, height // factor), interpolation=cv2.INTER_AREA), 1 / factor
