"""Tiny two-class datasets, generated deterministically from a seed (standard library only)."""

from __future__ import annotations

import math
import random

Point = tuple[float, float]
Split = tuple[list[Point], list[int]]

DATASETS = ("blobs", "moons")


def _blobs(rng: random.Random, n: int) -> Split:
    """Two Gaussian clusters, slightly overlapping."""
    xs: list[Point] = []
    ys: list[int] = []
    for i in range(n):
        label = i % 2
        cx, cy = (-1.0, -0.5) if label == 0 else (1.0, 0.5)
        xs.append((rng.gauss(cx, 0.8), rng.gauss(cy, 0.8)))
        ys.append(label)
    return xs, ys


def _moons(rng: random.Random, n: int) -> Split:
    """Two interleaving half circles: not linearly separable."""
    xs: list[Point] = []
    ys: list[int] = []
    for i in range(n):
        label = i % 2
        t = rng.uniform(0.0, math.pi)
        if label == 0:
            x, y = math.cos(t), math.sin(t)
        else:
            x, y = 1.0 - math.cos(t), 0.5 - math.sin(t)
        xs.append((x + rng.gauss(0.0, 0.15) - 0.5, y + rng.gauss(0.0, 0.15) - 0.25))
        ys.append(label)
    return xs, ys


def load(name: str, seed: int, n_train: int = 240, n_test: int = 120) -> tuple[Split, Split]:
    """Return ``(train, test)`` for dataset ``name``; the same seed always gives the same data."""
    makers = {"blobs": _blobs, "moons": _moons}
    if name not in makers:
        raise ValueError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")
    rng = random.Random(f"{name}:{seed}")
    xs, ys = makers[name](rng, n_train + n_test)
    return (xs[:n_train], ys[:n_train]), (xs[n_train:], ys[n_train:])
