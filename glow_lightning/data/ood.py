"""Out-of-distribution data sets, for evaluating what a flow trained on one set thinks of another
(Nalisnick et al. 2019, "Do Deep Generative Models Know What They Don't Know?": Glow trained on
CIFAR-10 gives SVHN higher likelihood).

``svhn``: SVHN cropped digits (Netzer et al. 2011), 3×32×32, 10 classes, from the Hub id
``ufldl-stanford/svhn`` (config ``cropped_digits``; its ``extra`` split is not used).
``digits_inverted`` / ``digits_noise``: the embedded digits with pixels 255 − x, or with a seeded
30% of pixels set to 0 or 255 (salt-and-pepper); fully offline, same labels and 4,500 / 500
split as ``digits``, for models trained on the digits.
"""

from __future__ import annotations

from glow_lightning.data.benchmarks import CIFAR10DataModule, DigitsDataModule


class SVHNDataModule(CIFAR10DataModule):
    """SVHN cropped digits: 73,257 train / 26,032 test images, preprocessed like CIFAR-10;
    5,000 training images are held out for validation, as for CIFAR-10."""

    name, title = "svhn", "SVHN"
    default_source = "ufldl-stanford/svhn"
    default_image_column = "image"
    default_val_size, reference_train_size = 5000, 73_257


class DigitsInvertedDataModule(DigitsDataModule):
    """The embedded digits with inverted pixels (255 − x): white background, dark strokes."""

    name, title = "digits_inverted", "inverted digits"
    variant = "inverted"


class DigitsNoiseDataModule(DigitsDataModule):
    """The embedded digits with a seeded 30% of pixels set to 0 or 255 (salt-and-pepper)."""

    name, title = "digits_noise", "noisy digits"
    variant = "noise"
