"""A page scan as a phone would photograph it lying on a desk, with the truth about where the page
went, to measure htr.pages.photo on (benchmarks.quality flatten, tests/test_photo_pages.py)."""
import cv2
import numpy as np


def photograph_page(scan, rng, jpeg_quality=None):
    """A BGR uint8 page scan -> (photo, homography): the page on a wooden or grey desk, seen from a
    tilted camera (a random perspective and a turn within +-6 degrees), slightly curled (its middle
    sagging by up to 0.5% of its height, the corners staying put), under a soft shadow and uneven warm
    light, with noise, a slight blur and a JPEG round trip (quality 70-90 unless given). homography:
    the 3x3 matrix taking a point of the scan to the photo (the curl moves points inside the page by
    at most its sag, and not the corners)."""
    height, width = scan.shape[:2]
    corners = tilted_corners(width, height, rng)
    margin = rng.uniform(0.08, 0.2, 4) * max(width, height)
    corners -= corners.min(axis=0) - margin[:2]
    out_w, out_h = (np.ceil(corners.max(axis=0) + margin[2:])).astype(int)
    page_corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]]) - 0.5
    homography = cv2.getPerspectiveTransform(page_corners, np.float32(corners - 0.5))
    photo_xy = np.stack(np.meshgrid(np.arange(out_w, dtype=np.float32), np.arange(out_h, dtype=np.float32)), -1)
    page_xy = cv2.perspectiveTransform(photo_xy.reshape(-1, 1, 2), np.linalg.inv(homography)).reshape(out_h, out_w, 2)
    sag = rng.uniform(0, 0.005) * height * np.sin(np.pi * np.clip((page_xy[..., 0] + 0.5) / width, 0, 1))
    map_x, map_y = page_xy[..., 0], page_xy[..., 1] - sag
    sheet = cv2.remap(scan, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    on_sheet = ((map_x >= -0.5) & (map_x <= width - 0.5) & (map_y >= -0.5) & (map_y <= height - 0.5)).astype(np.float32)
    on_sheet = cv2.GaussianBlur(on_sheet, (0, 0), 0.8)[..., None]
    photo = sheet * on_sheet + desk(out_h, out_w, rng) * (1 - on_sheet)
    photo *= (lighting(out_h, out_w, rng) * shadow(out_h, out_w, rng))[..., None] * warm_tint(rng)
    photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.4, 0.9)) + rng.normal(0, rng.uniform(2, 5), photo.shape)
    photo = np.clip(np.round(photo), 0, 255).astype(np.uint8)
    quality = int(jpeg_quality or rng.integers(70, 91))
    return cv2.imdecode(cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_COLOR), homography


def tilted_corners(width, height, rng):
    """Where the page's corners land, seen from a camera tilted towards the top or bottom and to a
    side (the far edge shorter), turned a little, each corner off by up to 2% more."""
    x, y = np.array([-0.5, 0.5, 0.5, -0.5]) * width, np.array([-0.5, -0.5, 0.5, 0.5]) * height
    far_top, far_left = rng.uniform(-0.08, 0.08), rng.uniform(-0.05, 0.05)
    x = x * (1 - far_top * np.sign(-y))  # far_top > 0: the top edge shorter
    y = y * (1 - far_left * np.sign(-x))
    angle = np.radians(rng.uniform(-6, 6))
    turned = np.stack([x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle)], -1)
    return turned + rng.uniform(-0.02, 0.02, (4, 2)) * [width, height]


def smooth_noise(rng, height, width, cell):
    """Noise in [0, 1] varying over about `cell` pixels."""
    coarse = rng.random((max(2, height // cell), max(2, width // cell))).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def desk(height, width, rng):
    """A wooden desk (brown, with grain along one direction) or a grey one (mottled), BGR float32."""
    if rng.random() < 0.6:
        colour = rng.uniform([40, 80, 120], [90, 130, 180])
        grain = smooth_noise(rng, height // 40 + 2, width, 6)  # long streaks across
        grain = cv2.resize(grain, (width, height), interpolation=cv2.INTER_LINEAR)
        texture = 0.75 + 0.45 * grain
    else:
        colour = np.full(3, rng.uniform(70, 140)) + rng.uniform(-10, 10, 3)
        texture = 0.85 + 0.3 * smooth_noise(rng, height, width, 8)
    return texture[..., None] * colour.astype(np.float32)


def lighting(height, width, rng):
    """Light falling off from a lamp somewhere near the picture: 1 at the lamp, 0.65-0.9 at the far corner."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    lamp_x, lamp_y = rng.uniform(-0.3, 1.3) * width, rng.uniform(-0.3, 1.3) * height
    distance = np.hypot(xx - lamp_x, yy - lamp_y)
    return 1 - rng.uniform(0.1, 0.35) * distance / distance.max()


def shadow(height, width, rng):
    """A soft shadow (of the phone, or a hand) over one side: down to 55-80% of the light, with a blurred edge."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    along = (xx - width / 2) * np.cos(angle) + (yy - height / 2) * np.sin(angle)
    edge = rng.uniform(0.15, 0.4) * np.hypot(width, height)
    softness = rng.uniform(0.02, 0.06) * np.hypot(width, height)
    inside = 1 / (1 + np.exp(-(along - edge) / softness))
    return 1 - rng.uniform(0.2, 0.45) * inside


def warm_tint(rng):
    """The BGR factors of a warm (yellowish) indoor light."""
    return np.array([rng.uniform(0.72, 0.88), rng.uniform(0.88, 0.96), 1.0], np.float32)
