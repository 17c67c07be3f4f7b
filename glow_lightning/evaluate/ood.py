"""Out-of-distribution checks (Nalisnick et al. 2019, "Do deep generative models know what they
don't know?"): how well a model's bits/dim tell its own test images from other data."""

from __future__ import annotations

import numpy as np


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve of telling ``out_scores`` from ``in_scores`` when a higher score
    means "more out-of-distribution" (scores: bits/dim, any shapes, flattened).

    Exact from ranks (the Mann-Whitney U statistic): the probability that a random OOD score
    exceeds a random in-distribution one, ties counted one half. 1: every OOD image scores
    higher; 0.5: no better than chance; 0: every OOD image scores lower (the paper's finding
    for SVHN under a CIFAR-10 model).

    >>> auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    1.0
    >>> auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0]))
    0.0
    >>> auroc(np.array([1.0, 3.0]), np.array([2.0, 4.0]))  # 3 of 4 pairs ordered
    0.75
    >>> auroc(np.array([1.0, 2.0]), np.array([2.0]))  # a tie counts one half
    0.75
    """
    x = np.asarray(in_scores, dtype=np.float64).ravel()
    y = np.asarray(out_scores, dtype=np.float64).ravel()
    if x.size == 0 or y.size == 0:
        raise ValueError(f"auroc needs scores on both sides, got {x.size} and {y.size}")
    ranks = average_ranks(np.concatenate([x, y]))
    u = ranks[x.size:].sum() - y.size * (y.size + 1) / 2
    return float(u / (x.size * y.size))


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values`` (N,), tied values sharing their average rank.

    >>> average_ranks(np.array([10.0, 30.0, 20.0, 20.0])).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    order = np.argsort(values, kind="mergesort")
    _, first, inverse, counts = np.unique(values[order], return_index=True,
                                          return_inverse=True, return_counts=True)
    average = first + (counts + 1) / 2.0  # rank of a tie group: its first rank + (count - 1) / 2
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = average[inverse]
    return ranks
