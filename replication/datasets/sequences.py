"""Images as the byte sequences the models read, the validation split, and seeded batches.

DESIGN section 3: an image is a byte sequence in raster order with channels interleaved
(r1 g1 b1 r2 g2 b2 ...): T = 784 for 28x28x1, T = 3072 for 32x32x3. For images stored
(N, height, width, channels) in C order that is exactly a reshape to (N, T).
"""

from __future__ import annotations

import numpy as np

from .checks import DataError

VALID_FRACTION = 0.1  # of the official training set, held out for validation
# The legacy RandomState generator: numpy guarantees its stream for a given seed will not change,
# so the split is the same with every numpy version.
VALID_SEED = 0


def split_indices(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, valid) indices into an official training set of n images: a permutation by
    np.random.RandomState(VALID_SEED); its last round(n * VALID_FRACTION) entries are the
    validation set, the rest the training set; each returned sorted."""
    order = np.random.RandomState(VALID_SEED).permutation(n)
    n_valid = int(round(n * VALID_FRACTION))
    return np.sort(order[: n - n_valid]), np.sort(order[n - n_valid :])


def to_bytes(images) -> np.ndarray:
    """uint8 images (N, height, width, channels) -> byte sequences (N, T): raster order, channels
    interleaved."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise DataError(f"to_bytes: expected uint8 images of shape (N, height, width, channels), "
                        f"found {images.dtype} of shape {images.shape}. Load images with load_dataset")
    return np.ascontiguousarray(images).reshape(len(images), -1)


def from_bytes(sequences, image_shape) -> np.ndarray:
    """The inverse of to_bytes: (N, T) bytes -> (N, height, width, channels) images."""
    sequences = np.asarray(sequences)
    height, width, channels = image_shape
    if sequences.dtype != np.uint8 or sequences.ndim != 2 or sequences.shape[1] != height * width * channels:
        raise DataError(f"from_bytes: expected uint8 sequences (N, {height * width * channels}) for images "
                        f"{height}x{width}x{channels}, found {sequences.dtype} of shape {sequences.shape}")
    return np.ascontiguousarray(sequences).reshape(len(sequences), height, width, channels)


def batches(data, batch_size: int, seed: int, epochs: int | None = None):
    """An iterator over batches of `data` (shuffled along its first axis), `epochs` passes or
    forever (None). Each pass draws a new permutation from np.random.default_rng(seed), so the
    sequence of batches depends on the seed alone; every batch has exactly batch_size items (the
    remainder of a pass, fewer than batch_size items, is left out of that pass)."""
    data = np.asarray(data)
    is_int = isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool)
    if not is_int or not 1 <= batch_size <= len(data):
        raise DataError(f"batches: expected a batch size 1..{len(data)} (the number of items), found {batch_size!r}")
    if epochs is not None and (not isinstance(epochs, (int, np.integer)) or epochs < 0):
        raise DataError(f"batches: expected epochs >= 0 or None (forever), found {epochs!r}")
    return _batches(data, int(batch_size), np.random.default_rng(seed), epochs)


def _batches(data, batch_size, rng, epochs):
    epoch = 0
    while epochs is None or epoch < epochs:
        order = rng.permutation(len(data))
        for start in range(0, len(data) - batch_size + 1, batch_size):
            yield data[order[start : start + batch_size]]
        epoch += 1
