"""A phone photo of a page read like a scan: htr.pages.photo finds the sheet, warps it flat and evens
its light; scans, desks without a sheet and blank images pass through untouched; and
python -m benchmarks.quality flatten on the gw_pages scans."""
import os
import re

import cv2
import numpy as np
import pytest

from conftest import run_script
from htr.images import UnreadableImage, read_image
from htr.pages.compose import compose_page, dataset_lines
from htr.pages.desk import desk, lighting, photograph_page, shadow
from htr.pages.photo import flatten_photo, to_photo_box, to_photo_points
from htr.pages.reading import check_page

GW_PAGES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "gw_pages")
DEMO_GAPS, DEMO_PITCH = (0.6, 0.9), 1.3  # as tests/test_pages.py lays demo words out


@pytest.fixture(scope="module")
def page(demo_dir):
    """A composed page of six lines of demo words, upright, and its true word boxes."""
    lines = [[(read_image(path), text) for path, text in line[:8]] for line in dataset_lines(demo_dir)[0][:6]]
    return compose_page(lines, np.random.default_rng(0), angle=0.0, line_pitch=DEMO_PITCH, gaps=DEMO_GAPS)


def page_corners(width, height):
    """The outer corners of a width x height image, in OpenCV's pixel-centre coordinates."""
    return np.float64([[0, 0], [width, 0], [width, height], [0, height]]) - 0.5


def photo_points(points, homography):
    return cv2.perspectiveTransform(np.float64(points).reshape(-1, 1, 2), homography).reshape(-1, 2)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_photographed_page_is_found_warped_upright_and_maps_back(page, seed):
    scan, truth = page
    height, width = scan.shape[:2]
    photo, homography = photograph_page(scan, np.random.default_rng(seed))
    flat, info = flatten_photo(photo)
    assert info["flattened"], info["reason"]
    true_corners = photo_points(page_corners(width, height), homography) + 0.5
    sheet = np.linalg.norm(true_corners[2] - true_corners[0])
    assert np.linalg.norm(np.asarray(info["corners"]) - true_corners, axis=1).max() < 0.01 * sheet
    flat_w, flat_h = info["size"]
    assert flat.shape == (flat_h, flat_w, 3)
    assert abs(flat_w / flat_h - width / height) < 0.06 * width / height  # the proportions it is seen in

    scale = np.array([flat_w / width, flat_h / height])
    for word in truth:  # each word's box, found on the flattened page, lands on the word in the photo
        x, y, w, h = word["box"]
        in_photo = photo_points([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], homography)
        box_on_flat = [x * scale[0], y * scale[1], w * scale[0], h * scale[1]]
        assert np.abs(to_photo_points(page_corners(*box_on_flat[2:]) + 0.5 + box_on_flat[:2], info) - in_photo).max() < 4
        assert np.abs(np.subtract(to_photo_box(box_on_flat, info), [*in_photo.min(axis=0), *np.ptp(in_photo, axis=0)])).max() < 5
        ink = flat[int(box_on_flat[1]):int(box_on_flat[1] + box_on_flat[3]), int(box_on_flat[0]):int(box_on_flat[0] + box_on_flat[2])]
        assert ink.min() < 120  # upright: the words' ink is where the words were

    paper = flat[flat.min(axis=2) > 150][:, 0]  # a grey scan: paper near white and evenly lit, no colour cast
    assert np.median(paper) > 230 and np.percentile(paper, 5) > 200
    assert np.array_equal(flat[..., 0], flat[..., 2])


def test_a_scan_passes_through_unchanged(page):
    scan, _ = page
    same, info = flatten_photo(scan)
    assert same is scan and not info["flattened"]
    assert np.allclose(to_photo_points([[10, 20], [300, 40]], info), [[10, 20], [300, 40]])
    assert to_photo_box([10, 20, 30, 40], info) == [10, 20, 30, 40]


@pytest.mark.skipif(not os.path.isdir(GW_PAGES), reason="../shared/data/gw_pages (real page scans) is not here")
def test_a_real_page_scan_passes_through_unchanged():
    scan = read_image(os.path.join(GW_PAGES, "images", "300.jpg"))
    assert flatten_photo(scan)[0] is scan


def test_a_photo_of_just_a_desk_is_not_warped():
    for seed in range(4):
        rng = np.random.default_rng(seed)
        photo = desk(600, 800, rng) * (lighting(600, 800, rng) * shadow(600, 800, rng))[..., None]
        photo = np.clip(photo + rng.normal(0, 3, photo.shape), 0, 255).astype(np.uint8)
        same, info = flatten_photo(photo)
        assert same is photo and not info["flattened"], info["reason"]


def test_blank_empty_and_tiny_images_still_get_read_pages_message():
    for image, message in [(np.full((600, 400, 3), 255, np.uint8), "blank"), (np.zeros((0, 0, 3), np.uint8), "empty"),
                           (np.zeros((5, 400, 3), np.uint8), "too small")]:
        same, info = flatten_photo(image)
        assert same is image and not info["flattened"]
        with pytest.raises(UnreadableImage, match=message):
            check_page(same)


@pytest.mark.skipif(not os.path.isdir(GW_PAGES), reason="../shared/data/gw_pages (real page scans) is not here")
def test_bench_flatten_on_a_gw_page():
    result = run_script("benchmarks.quality", "flatten", "--gw-pages", GW_PAGES, "--pages", "300")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 of 1 flattened" in result.stdout
    assert float(re.search(r"word boxes mean IoU ([\d.]+),", result.stdout).group(1)) > 0.8
    bad = run_script("benchmarks.quality", "flatten", "--gw-pages", GW_PAGES, "--pages", "3oo")
    assert bad.returncode != 0 and "--pages" in bad.stderr
