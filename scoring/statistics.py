"""Statistics for comparing pipeline arms: plain functions of score arrays, no models.

`imageforge eval` scores every prompt under several arms with the same seeds, so the
comparisons are paired: the difference of two arms is taken per prompt before it is
averaged. Intervals are percentile bootstrap intervals with a fixed seed, so the same scores
always give the same report; with a few dozen prompts they are honest about how little a
small mean difference says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_RESAMPLES",
    "DEFAULT_SEED",
    "Interval",
    "WinRate",
    "bootstrap_mean",
    "paired_differences",
    "win_rate",
]

Values = Sequence[float] | npt.NDArray[np.floating]
"""One score per prompt: a list or a numpy array."""

DEFAULT_RESAMPLES = 2000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Interval:
    """A mean with its bootstrap confidence interval over ``n`` values."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float

    def as_dict(self) -> dict[str, float | int]:
        return {"mean": self.mean, "low": self.low, "high": self.high, "n": self.n, "confidence": self.confidence}


@dataclass(frozen=True)
class WinRate:
    """How often one arm beat another on the same prompt; a tie counts half in ``rate``."""

    wins: int
    ties: int
    losses: int

    @property
    def n(self) -> int:
        return self.wins + self.ties + self.losses

    @property
    def rate(self) -> float:
        return (self.wins + 0.5 * self.ties) / self.n if self.n else float("nan")

    def as_dict(self) -> dict[str, float | int]:
        return {"wins": self.wins, "ties": self.ties, "losses": self.losses, "n": self.n, "rate": self.rate}


def _as_array(values: Values, name: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be one-dimensional, got shape {array.shape}.")
    if array.size == 0:
        raise ValueError(f"`{name}` must hold at least one value, got none.")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must hold finite numbers, got {array.tolist()!r}.")
    return array


def bootstrap_mean(
    values: Values,
    *,
    confidence: float = 0.95,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = DEFAULT_SEED,
) -> Interval:
    """The mean of ``values`` and its percentile bootstrap interval.

    ``resamples`` resamples of the same size are drawn with replacement from a generator
    seeded with ``seed``; the interval's ends are the (1 - confidence) / 2 and
    (1 + confidence) / 2 quantiles of their means. One value gives a zero-width interval.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must be between 0 and 1, got {confidence!r}.")
    if resamples < 1:
        raise ValueError(f"`resamples` must be at least 1, got {resamples!r}.")
    array = _as_array(values, "values")
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, array.size, size=(resamples, array.size))
    means = array[indices].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(array.mean()), float(low), float(high), int(array.size), confidence)


def paired_differences(treatment: Values, control: Values) -> npt.NDArray[np.float64]:
    """Per-prompt ``treatment - control``; both lists hold one score per prompt, in the same order."""
    a = _as_array(treatment, "treatment")
    b = _as_array(control, "control")
    if a.shape != b.shape:
        raise ValueError(f"`treatment` and `control` must pair up, got {a.size} and {b.size} values.")
    return a - b


def win_rate(treatment: Values, control: Values, *, tolerance: float = 1e-9) -> WinRate:
    """Prompts where ``treatment`` scored higher, within ``tolerance`` of, or lower than ``control``."""
    if tolerance < 0:
        raise ValueError(f"`tolerance` must be >= 0, got {tolerance!r}.")
    differences = paired_differences(treatment, control)
    ties = int(np.sum(np.abs(differences) <= tolerance))
    wins = int(np.sum(differences > tolerance))
    return WinRate(wins=wins, ties=ties, losses=int(differences.size) - wins - ties)
