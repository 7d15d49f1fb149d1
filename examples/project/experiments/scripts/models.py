"""Two small binary classifiers with hand-written gradients (standard library only).

Both keep their weights in one flat list ``params`` so that a checkpoint is plain JSON.
"""

from __future__ import annotations

import math
import random

Point = tuple[float, float]

METHODS = ("logreg", "mlp")


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class LogReg:
    """Logistic regression: p = sigmoid(w . x + b); params = [w0, w1, b]."""

    def __init__(self, rng: random.Random) -> None:
        self.params = [rng.gauss(0.0, 0.1), rng.gauss(0.0, 0.1), 0.0]

    def forward(self, x: Point) -> float:
        w0, w1, b = self.params
        return _sigmoid(w0 * x[0] + w1 * x[1] + b)

    def grad(self, x: Point, y: int) -> tuple[float, list[float]]:
        p = self.forward(x)
        d = p - y
        return p, [d * x[0], d * x[1], d]


class MLP:
    """One hidden tanh layer of ``hidden`` units; params = [W1 (h x 2), b1 (h), w2 (h), b2]."""

    def __init__(self, rng: random.Random, hidden: int = 8) -> None:
        self.hidden = hidden
        scale = 1.0 / math.sqrt(2.0)
        w1 = [rng.gauss(0.0, scale) for _ in range(2 * hidden)]
        w2 = [rng.gauss(0.0, 1.0 / math.sqrt(hidden)) for _ in range(hidden)]
        self.params = w1 + [0.0] * hidden + w2 + [0.0]

    def _hidden(self, x: Point) -> list[float]:
        h, p = self.hidden, self.params
        return [math.tanh(p[2 * j] * x[0] + p[2 * j + 1] * x[1] + p[2 * h + j]) for j in range(h)]

    def forward(self, x: Point) -> float:
        h, p = self.hidden, self.params
        act = self._hidden(x)
        return _sigmoid(sum(p[3 * h + j] * act[j] for j in range(h)) + p[4 * h])

    def grad(self, x: Point, y: int) -> tuple[float, list[float]]:
        h, p = self.hidden, self.params
        act = self._hidden(x)
        prob = _sigmoid(sum(p[3 * h + j] * act[j] for j in range(h)) + p[4 * h])
        d = prob - y
        g = [0.0] * len(p)
        for j in range(h):
            g[3 * h + j] = d * act[j]
            pre = d * p[3 * h + j] * (1.0 - act[j] * act[j])
            g[2 * j] = pre * x[0]
            g[2 * j + 1] = pre * x[1]
            g[2 * h + j] = pre
        g[4 * h] = d
        return prob, g


Model = LogReg | MLP


def build(method: str, seed: int) -> Model:
    rng = random.Random(f"init:{method}:{seed}")
    if method == "logreg":
        return LogReg(rng)
    if method == "mlp":
        return MLP(rng)
    raise ValueError(f"unknown method {method!r} (choose from {', '.join(METHODS)})")


def bce(p: float, y: int) -> float:
    """Binary cross-entropy of one prediction, clamped away from log(0)."""
    p = min(max(p, 1e-12), 1.0 - 1e-12)
    return -math.log(p) if y == 1 else -math.log(1.0 - p)


def sgd_step(model: Model, xs: list[Point], ys: list[int], lr: float, clip: float | None) -> float:
    """One minibatch step; returns the batch's mean loss."""
    total = [0.0] * len(model.params)
    loss = 0.0
    for x, y in zip(xs, ys, strict=True):
        p, g = model.grad(x, y)
        loss += bce(p, y)
        total = [a + b for a, b in zip(total, g, strict=True)]
    n = max(1, len(xs))
    step = [a / n for a in total]
    if clip is not None:
        norm = math.sqrt(sum(s * s for s in step))
        if norm > clip:
            step = [s * clip / norm for s in step]
    model.params = [w - lr * s for w, s in zip(model.params, step, strict=True)]
    return loss / n


def evaluate(model: Model, xs: list[Point], ys: list[int]) -> tuple[float, float]:
    """Return ``(accuracy, mean loss)`` on a split."""
    correct = 0
    loss = 0.0
    for x, y in zip(xs, ys, strict=True):
        p = model.forward(x)
        correct += int((p >= 0.5) == (y == 1))
        loss += bce(p, y)
    n = max(1, len(xs))
    return correct / n, loss / n
