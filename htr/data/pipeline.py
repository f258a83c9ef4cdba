"""The training data pipeline (data_provider), and what it adds to mltu's DataProvider so that it
keeps up with a GPU: every image decoded once, batches prepared by several worker processes, and
augmentation that is the same whatever the number of workers.

- ImageCache decodes every image once, up front, into a few large NumPy arrays: later epochs
  re-read and re-decode no PNG. It keeps each image at full size (grayscale ones in one channel),
  because augmentation (rotation, slant) runs on the full-size image before resizing, as it always
  has; a smaller copy would change what erode/dilate, blur and noise do, which work in pixels.
- SeededDataProvider draws each sample's augmentation from NumPy's generator seeded with
  (seed, epoch, sample index), and each epoch's order from (seed, epoch). mltu's augmentors and
  its shuffle call np.random.* on the global generator, whose state depends on which samples the
  same process prepared before: with several workers the images would depend on the number of
  workers and on timing. Seeded per sample, a batch is the same whichever worker prepares it.
- The workers are processes (Keras's PyDataset workers with use_multiprocessing), not threads:
  threads would share the one global generator, and much of each sample's time is Python code
  between small NumPy/OpenCV calls, which holds the GIL. Keras forks the workers at the start of
  each epoch: they share the cache with the training process.
"""
import functools
import gc
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import keras
import numpy as np
from mltu.annotations.images import CVImage
from mltu.augmentors import RandomBrightness, RandomErodeDilate, RandomGaussianBlur, RandomRotate, RandomSharpen
from mltu.tensorflow.dataProvider import DataProvider  # a keras.utils.PyDataset
from mltu.transformers import LabelIndexer, LabelPadding

from htr.data.augment import RandomNoise, RandomPhoto, RandomShear
from htr.preprocess import PrepareImage, stack_padded
from htr.data.iam import DatasetError

CHUNK = 1024  # images per cache array: few arrays (forked workers touch only their headers), little extra memory while building


def reset_signal_handlers():
    """In a forked worker: Ctrl-C is for the training process, which stops the workers, and
    SIGTERM (how a pool ends its workers) ends it; train.py's handlers would only print."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


# Keras forks the workers from the training process at the start of each epoch. Frozen, the
# objects a worker inherits stay out of its garbage collections, which would otherwise write to
# (and so copy) much of the training process's memory in every worker.
os.register_at_fork(before=gc.freeze, after_in_parent=gc.unfreeze, after_in_child=reset_signal_handlers)


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def default_workers(gpus):
    """Worker processes for the training batches: with a GPU, every core but one (the training
    loop, which feeds the GPU and receives the batches); on a CPU the model needs the cores far
    more than the pipeline (the speed benchmark of the pipeline: a worker prepares several times what the whole CPU
    trains), so one worker per 8 cores."""
    cores = usable_cores()
    return max(1, cores - 1) if gpus else max(1, cores // 8)


def decode(path):
    """An image as OpenCV reads it in colour (mltu's CVImage does), but a grayscale PNG in one
    channel: a third of the memory, and GRAY2BGR gives back exactly the three equal channels.
    Other formats are read in colour, which also turns JPEGs upright by their EXIF orientation."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED) if path.lower().endswith(".png") else None
    if image is None or image.ndim != 2 or image.dtype != np.uint8:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise DatasetError(f"cannot read the image {path}: delete it from the data or replace it")
    return image


def decode_chunk(paths):
    images = [decode(path) for path in paths]
    shapes = [image.shape for image in images]
    offsets = np.cumsum([0] + [image.size for image in images])
    return np.concatenate([image.ravel() for image in images]), offsets, shapes


class ImageCache:
    """Every image of `paths` decoded once and kept in memory; image(i) is a fresh BGR copy of the i-th."""

    def __init__(self, paths):
        start = time.perf_counter()
        chunks = [paths[i:i + CHUNK] for i in range(0, len(paths), CHUNK)]
        with ThreadPoolExecutor(usable_cores()) as pool:  # cv2 releases the GIL while decoding
            self.chunks = list(pool.map(decode_chunk, chunks))
        self.seconds = time.perf_counter() - start

    @property
    def nbytes(self):
        return sum(pixels.nbytes + offsets.nbytes for pixels, offsets, _ in self.chunks)

    def __len__(self):
        return sum(len(shapes) for _, _, shapes in self.chunks)

    def image(self, index):
        pixels, offsets, shapes = self.chunks[index // CHUNK]
        i = index % CHUNK
        image = pixels[offsets[i]:offsets[i + 1]].reshape(shapes[i])
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()


class CachedImageReader:
    """mltu data preprocessor: (sample index, label) -> (CVImage, label), from the cache."""

    def __init__(self, cache):
        self.cache = cache

    def __call__(self, index, label):
        return CVImage(self.cache.image(index)), label


def one_kind_per_batch(order, is_line, batch_size, rng):
    """`order` rearranged so that each batch holds lines (labels with a space) or words, not both:
    the batch is padded to its widest image, so a word among lines would cost as much as a line
    (5 minutes an epoch instead of 1 on gw_lines + gw_words). The full batches of both kinds come in a
    random order, and what is left of each kind makes the last batches. A set of one kind keeps `order`."""
    if is_line.all() or not is_line.any():
        return order
    full, rest = [], []
    for kind in (True, False):
        members = order[is_line[order] == kind]
        cut = len(members) - len(members) % batch_size
        full += list(members[:cut].reshape(-1, batch_size))
        rest.append(members[cut:])
    return np.concatenate([full[i] for i in rng.permutation(len(full))] + rest)


class SeededDataProvider(DataProvider):
    """mltu's DataProvider over the (image path, label) rows, reading the images from `cache`,
    whose randomness depends only on (seed, epoch, sample index): the same batches with any number
    of workers."""

    def __init__(self, rows, cache, seed, shuffle, epoch=0, **kwargs):
        super().__init__(dataset=[(index, label) for index, (_, label) in enumerate(rows)], shuffle=False,
                         initial_epoch=epoch, skip_validation=True, data_preprocessors=[CachedImageReader(cache)],
                         **kwargs)
        self.cache = cache
        self.start_executor()  # mltu starts it on batch 0 only, which a worker may never prepare
        self.seed, self.shuffle_each_epoch = seed % 2**32, shuffle
        self.order, self.order_epoch = np.arange(len(rows)), None
        self.is_line = np.array([" " in label for _, label in rows], dtype=bool)

    def on_epoch_end(self):
        self._epoch += 1  # instead of mltu's shuffle with the global generator

    def get_batch_annotations(self, index):
        if self.shuffle_each_epoch and self.order_epoch != self._epoch:
            rng = np.random.default_rng([self.seed, self._epoch])
            self.order = one_kind_per_batch(rng.permutation(len(self._dataset)), self.is_line, self._batch_size, rng)
            self.order_epoch = self._epoch
        batch = self.order[index * self._batch_size:(index + 1) * self._batch_size]
        return [self._dataset[i] for i in batch]

    def process_data(self, batch_data):
        state = np.random.get_state()  # the training process's own draws stay as they were
        np.random.seed([self.seed, self._epoch, batch_data[0]])
        try:
            return super().process_data(batch_data)
        finally:
            np.random.set_state(state)


def as_model_inputs(images, labels, ctc_shortcut=False):
    """A batch as NumPy arrays, images as float32 like the model's input: at the start of fit()
    Keras averages one batch across the workers of a multi-worker run, and TensorFlow's collective
    ops cannot add uint8. A model with a CTC shortcut has two outputs, both trained on the labels."""
    images, labels = stack_padded(images), np.array(labels)
    return images, ({"output": labels, "shortcut": labels} if ctc_shortcut else labels)


def data_provider(rows, configs, batch_size, augmentors=(), shuffle=False, seed=0, epoch=0, workers=1):
    """The data pipeline: read the image (decoded once, ImageCache), augment it (training only),
    resize it to the model's input, turn the label into vocabulary indices padded to a fixed
    length (padding = len(vocab), the CTC blank), and batch. `workers` processes prepare the
    batches while the model trains; each sample's augmentation and each epoch's order depend only
    on (seed, epoch, sample index), so any number of workers gives the same batches."""
    provider = SeededDataProvider(
        rows,
        ImageCache([path for path, _ in rows]),
        seed=seed,
        shuffle=shuffle,
        epoch=epoch,
        batch_size=batch_size,
        augmentors=list(augmentors),
        transformers=[
            # The same function as inference (ImageToWordModel.resize), so the two cannot drift apart.
            PrepareImage(configs.height, configs.width, configs.crop, configs.keep_aspect_ratio),
            LabelIndexer(configs.vocab),
            LabelPadding(max_word_length=configs.max_text_length, padding_value=len(configs.vocab)),
        ],
        batch_postprocessors=[functools.partial(as_model_inputs, ctc_shortcut=configs.ctc_shortcut > 0)],
    )
    # mltu's DataProvider never calls Keras 3's PyDataset.__init__, so fit() would ignore
    # workers=... and prepare every batch in the training loop.
    keras.utils.PyDataset.__init__(provider, workers=workers, use_multiprocessing=True)
    return provider


def training_augmentors(name):
    """Random changes to each training image, so the model learns the words, not the pictures.
    Paper is light, so rotation and slant fill with white, and erode/dilate needs a kernel over
    1 pixel to change anything (mltu's default is (1, 1))."""
    if name == "tutorial":
        return [RandomBrightness(), RandomErodeDilate(kernel_size=(2, 2)), RandomSharpen(),
                RandomRotate(angle=10, borderValue=(255, 255, 255))]
    # "rich": handwriting varies most in slant and stroke; words are rarely rotated by 10 degrees.
    rich = [RandomBrightness(), RandomErodeDilate(kernel_size=(2, 2)), RandomSharpen(),
            RandomShear(max_shear=0.5), RandomRotate(angle=3, borderValue=(255, 255, 255)),
            RandomGaussianBlur(sigma=1.0, random_chance=0.2), RandomNoise(random_chance=0.2)]
    if name == "lines":
        # mltu's rotation turns onto a canvas that holds every corner, so a long line rotated by 3
        # degrees comes back nearly twice as high.
        return [augmentor for augmentor in rich if not isinstance(augmentor, RandomRotate)]
    if name == "photos":
        # Half the words become photo-like (last, so the white that slant and rotation fill in is
        # photographed too): the model's PaperNormalization levels paper and ink, this teaches the
        # rest. Not the default: it reads photos far better, and scans a little worse, in the same epochs.
        return rich + [RandomPhoto(random_chance=0.5)]
    return rich
