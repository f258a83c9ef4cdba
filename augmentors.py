"""Two augmentations handwriting needs that mltu does not ship, as mltu augmentors, so they sit
in the DataProvider's list next to mltu's own (train.py: training_augmentors)."""
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
