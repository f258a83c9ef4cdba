"""Augmentations handwriting needs that mltu does not ship, as mltu augmentors, so they sit
in the DataProvider's list next to mltu's own (htr.data.pipeline.training_augmentors); and
photo_like, which turns a scanned word into what a phone photo of it looks like (the photos
benchmark, RandomPhoto)."""
import cv2
import numpy as np
from mltu.annotations.images import Image
from mltu.augmentors import Augmentor, randomness_decorator


class RandomShear(Augmentor):
    """Slants the word left or right by up to `max_shear` (horizontal shift per pixel of height):
    writers differ more in slant than in anything else. The canvas widens so no ink is cut off,
    and the new corners are white paper."""

    def __init__(self, random_chance=0.5, max_shear=0.5):
        super().__init__(random_chance)
        self.max_shear = max_shear

    @randomness_decorator
    def __call__(self, image: Image, annotation):
        pixels = image.numpy()
        height, width = pixels.shape[:2]
        shear = np.random.uniform(-self.max_shear, self.max_shear)
        shift = abs(shear) * height
        # x' = x + shear * (y - height) for a right slant; shifted so every x' stays >= 0.
        matrix = np.float32([[1, -shear, max(shear, 0) * height], [0, 1, 0]])
        image.update(cv2.warpAffine(pixels, matrix, (width + int(np.ceil(shift)), height),
                                    borderMode=cv2.BORDER_CONSTANT, borderValue=(255, 255, 255)))
        return image, annotation


class RandomNoise(Augmentor):
    """Adds Gaussian pixel noise of standard deviation up to `max_sigma` (of 255): scanners and
    paper texture."""

    def __init__(self, random_chance=0.5, max_sigma=20):
        super().__init__(random_chance)
        self.max_sigma = max_sigma

    @randomness_decorator
    def __call__(self, image: Image, annotation):
        pixels = image.numpy().astype(np.float32)
        sigma = np.float32(np.random.uniform(0, self.max_sigma))
        # A Generator seeded from the global one (which train.py seeds per sample) draws float32
        # normals in half the time of np.random.normal, the costliest step of the augmentation.
        generator = np.random.default_rng(np.random.randint(2**32, dtype=np.uint64))
        pixels += sigma * generator.standard_normal(pixels.shape, np.float32)
        image.update(np.clip(pixels, 0, 255).astype(np.uint8))
        return image, annotation


# What phone photos of handwriting show, in BGR: paper from white to cream, yellowed and grey, ink in
# black to grey, brown or blue-black, each at a random brightness.
PAPER_TINT = ((0.8, 0.9, 1.0), (1.0, 1.0, 1.0))  # blue and green fall off first as paper yellows
INK_COLOURS = {"grey": (60, 60, 60), "brown": (40, 70, 110), "blue": (120, 50, 30)}


def photo_like(image, rng):
    """A scanned word (BGR uint8, dark ink on light paper) -> the same word as a phone photographs
    it: a looser crop, tinted paper, grey, brown or blue ink (sometimes faded), light falling off
    across the paper and often a shadow, camera blur and noise, and JPEG compression. Every
    strength is drawn from `rng` (a NumPy Generator), so a seed gives the same photo every time.
    Sizes are relative to the image's height, so they look alike at any resolution."""
    ink = 1 - cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255  # 0 paper, 1 ink
    height = image.shape[0]
    top, bottom, left, right = (int(rng.uniform(0, 0.4) * height) for _ in range(4))
    ink = cv2.copyMakeBorder(ink, top, bottom, left, right, cv2.BORDER_CONSTANT, value=0)
    height, width = ink.shape

    paper = np.float32(rng.uniform(160, 255) * rng.uniform(*PAPER_TINT))
    # at most 0.45 x the paper's light: ink a person still reads easily
    ink_colour = np.minimum(np.float32(INK_COLOURS[rng.choice(list(INK_COLOURS))]) * rng.uniform(0.3, 1.6), 0.45 * paper)
    ink = ink[:, :, np.newaxis] * np.float32(rng.uniform(0.8, 1.0))  # faded ink lets some of the paper's light through
    photo = paper * (1 - ink) + ink_colour * ink

    # Light: a gradient across the page, and half the time a soft-edged shadow over part of it.
    y, x = np.mgrid[0:height, 0:width].astype(np.float32) / height
    angle = rng.uniform(0, 2 * np.pi)
    along = x * np.cos(angle) + y * np.sin(angle)
    light = 1 - rng.uniform(0, 0.35) * (along - along.min()) / max(along.max() - along.min(), 1e-6)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        edge = (x - rng.uniform(0, width / height)) * np.cos(angle) + (y - rng.uniform(0, 1)) * np.sin(angle)
        light *= 1 - rng.uniform(0.2, 0.5) / (1 + np.exp(-edge / rng.uniform(0.05, 0.3)))
    photo *= light[:, :, np.newaxis]

    photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.2, 1.0) * height / 60)
    photo += rng.standard_normal(photo.shape, np.float32) * np.float32(rng.uniform(2, 10))
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", photo, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(25, 75))])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


class RandomPhoto(Augmentor):
    """photo_like as a training augmentation. Like mltu's augmentors it draws from NumPy's global
    generator (which train.py seeds), through a Generator seeded from it."""

    @randomness_decorator
    def __call__(self, image: Image, annotation):
        image.update(photo_like(image.numpy(), np.random.default_rng(np.random.randint(2**31))))
        return image, annotation
