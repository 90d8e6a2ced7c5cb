"""The rating scale of loaded data: declared (``--scale 1,5``), an edition's, or inferred from the values.

A declared or known scale is a contract: a rating outside it (or off its step) is an error naming its line.
An inferred scale is whatever the values span, so a typo (a 7 among 1..5 stars) would silently widen it:
``inferred_scale`` also finds the few ratings that lie far from the rest, and the loader warns about them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from deepmf.data.columns import RawRatings
from deepmf.data.ratings import RatingScale, distinct_counts, on_grid, step_of
from deepmf.errors import ConfigError, DataError, DataWarning

# Rows per slice when validating a column with float64 temporaries (8 MiB each).
CHECK_SLICE = 1 << 20
# Ratings a data set may hold "far from the rest" before they count as part of the scale: 0.1 %, at least one;
# below ODD_MIN_RATINGS ratings there is no "rest" to compare with.
ODD_SHARE = 0.001
ODD_MIN_RATINGS = 20
# Largest number of classes a declared scale may have (a classification head has one output per class).
MAX_CLASSES = 10_000


@dataclass(frozen=True)
class ScaleBounds:
    """A declared scale: every rating must lie in ``minimum..maximum`` and, when ``step`` is given, on its grid
    from ``minimum``. Without a step, the step is detected from the values. ``owner`` names it in refusals
    ("the scale", "the training data's scale")."""

    minimum: float
    maximum: float
    step: float | None = None
    owner: str = "the scale"

    @classmethod
    def of(cls, scale: RatingScale, owner: str = "the scale", *, step: bool = True) -> ScaleBounds:
        """The bounds (and, with ``step``, the step) of a known scale, named ``owner`` in refusals.

        Held-out ratings are held to the bounds only: a model cannot score a 7 on 1..5 stars, but a 3.5 it can,
        and the step of continuous ratings (0.01 "for reporting") is no grid at all.
        """
        return cls(scale.minimum, scale.maximum, scale.step if step else None, owner)

    def __str__(self) -> str:
        return f"{self.minimum:g}..{self.maximum:g}" + ("" if self.step is None else f" by {self.step:g}")


def declared_scale(spec: object) -> ScaleBounds | None:
    """A declared scale from ``"1,5"``, ``"0.5,5,0.5"``, ``(1, 5)``, ``(0.5, 5, 0.5)`` or a RatingScale.

    Raises:
        ConfigError: anything else, bounds that are not finite or not increasing, a step that does not tile them.
    """
    if spec is None or isinstance(spec, ScaleBounds):
        return spec
    if isinstance(spec, RatingScale):
        return ScaleBounds.of(spec)
    parts: Sequence[object]
    if isinstance(spec, str):
        parts = [p.strip() for p in spec.replace("..", ",").split(",")]
    elif isinstance(spec, (tuple, list)):
        parts = spec
    else:
        raise ConfigError(f"a scale is MIN,MAX or MIN,MAX,STEP (e.g. '1,5' or '0.5,5,0.5'), not {spec!r}")
    try:
        numbers = [float(p) for p in parts]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        numbers = []
    if len(numbers) not in (2, 3) or not all(math.isfinite(v) for v in numbers):
        raise ConfigError(f"a scale is MIN,MAX or MIN,MAX,STEP with finite numbers (e.g. '1,5'), not {spec!r}")
    low, high = numbers[:2]
    step = numbers[2] if len(numbers) == 3 else None
    if not low < high:
        raise ConfigError(f"scale {spec!r}: the minimum must be below the maximum")
    if step is not None:
        n_steps = (high - low) / step if step > 0 else -1.0
        if step <= 0 or abs(n_steps - round(n_steps)) > 1e-6 or round(n_steps) + 1 > MAX_CLASSES:
            raise ConfigError(
                f"scale {spec!r}: the step must be positive, divide {high:g} - {low:g} evenly and give at most "
                f"{MAX_CLASSES:,} values"
            )
    return ScaleBounds(low, high, step)


def check_values(values: np.ndarray, bounds: ScaleBounds, where: Callable[[int], str]) -> None:
    """Refuse ratings outside ``bounds`` or off its step, naming the first offending one.

    Args:
        values: the ratings.
        bounds: the scale they must follow.
        where: names a row for the message ("u.data:12", "DataFrame row 3").
    """
    owner = bounds.owner
    tol = 1e-6
    # In slices: float64 temporaries of a 20M-row column would cost several hundred MiB at once.
    for begin in range(0, len(values), CHECK_SLICE):
        part = values[begin : begin + CHECK_SLICE].astype(np.float64)
        outside = ~((part >= bounds.minimum - tol) & (part <= bounds.maximum + tol))  # NaN is outside too
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise DataError(
                f"{where(begin + row)}: rating {part[row]:g} is outside {owner} "
                f"{bounds.minimum:g}..{bounds.maximum:g}"
            )
        if bounds.step is None:
            continue
        part -= bounds.minimum
        part /= bounds.step  # in steps from the minimum, in place: the check runs on every rating of an edition
        off = np.abs(part - np.rint(part)) > 1e-4
        if off.any():
            row = int(np.flatnonzero(off)[0])
            value = float(values[begin + row])
            raise DataError(
                f"{where(begin + row)}: rating {value:g} is not a multiple of the scale step "
                f"{bounds.step:g} from {bounds.minimum:g}" + ("" if owner == "the scale" else f" ({owner} {bounds})")
            )


def scale_within(raw: RawRatings, bounds: ScaleBounds) -> RatingScale:
    """The RatingScale of ratings checked against ``bounds``; a missing step is detected from the values."""
    check_values(raw.ratings, bounds, raw.where)
    if bounds.step is not None:
        return RatingScale(bounds.minimum, bounds.maximum, bounds.step)
    distinct, _ = distinct_counts(raw.ratings)
    return RatingScale(bounds.minimum, bounds.maximum, step_of(np.r_[distinct, bounds.minimum, bounds.maximum]))


@dataclass(frozen=True)
class OddRatings:
    """A few ratings that do not look like the rest: far outside them, or off the step the rest follow.

    Attributes:
        far: distinct values far from the rest.
        off_step: distinct values off the step the rest follow.
        count: ratings holding those values.
        usual: (min, max, step) of the other ratings.
        cuts: ratings below cuts[0] or above cuts[1] are the far ones.
    """

    far: np.ndarray
    off_step: np.ndarray
    count: int
    usual: tuple[float, float, float]
    cuts: tuple[float, float]

    def rows(self, ratings: np.ndarray) -> np.ndarray:
        """Rows of ``ratings`` that hold an odd value."""
        odd = (ratings < self.cuts[0]) | (ratings > self.cuts[1])
        if len(self.off_step):
            odd |= ~on_grid(ratings.astype(np.float64), self.usual[2])
        return np.flatnonzero(odd)


def odd_ratings(distinct: np.ndarray, counts: np.ndarray) -> OddRatings | None:
    """The few ratings (together at most 0.1 % of them, at least one) that lie far from the rest, or break the
    step the rest follow; None when there are none.

    The rest is bounded by the 0.1 % quantiles from each end, ``a`` and ``b``; a value is far when it lies more
    than max(1.5 steps, 10 % of b - a) beyond them, i.e. with empty steps between it and the rest (a 7 among
    1..5 stars, a -3, a 50 typed for 5.0). Values each held by at most 0.1 % of the ratings and off the grid
    of the common values' step (a 5.5 among whole stars) are odd too, when they are few.
    """
    n = int(counts.sum())
    allowed = max(1, int(n * ODD_SHARE))
    if n < ODD_MIN_RATINGS or len(distinct) < 2:
        return None  # too few ratings to tell the rest from the odd ones
    low = distinct[np.searchsorted(np.cumsum(counts), allowed, side="right")]
    high = distinct[::-1][np.searchsorted(np.cumsum(counts[::-1]), allowed, side="right")]
    common = counts > allowed
    step = step_of(distinct[common]) if common.any() else step_of(distinct)
    margin = max(1.5 * step, 0.1 * (high - low))
    cuts = (low - margin, high + margin)
    far = (distinct < cuts[0]) | (distinct > cuts[1])
    off = ~far & ~on_grid(distinct, step)
    if counts[far | off].sum() > allowed:
        off[:] = False  # many values off the step: the ratings are finer than the common ones, not wrong
    odd = far | off
    if not odd.any():
        return None
    rest = distinct[~odd]
    return OddRatings(distinct[far], distinct[off], int(counts[odd].sum()), (rest[0], rest[-1], step), cuts)


def inferred_scale(raw: RawRatings) -> tuple[RatingScale, str | None]:
    """The scale the ratings span, and a one-line warning (also issued as a DataWarning) when a few of them
    lie far from the rest or off their step; None when none do."""
    if len(raw.ratings) == 0:
        raise DataError("cannot detect a rating scale from no ratings")
    distinct, counts = distinct_counts(raw.ratings)
    scale = RatingScale(float(distinct[0]), float(distinct[-1]), step_of(distinct))
    odd = odd_ratings(distinct, counts)
    if odd is None:
        return scale, None
    first = int(odd.rows(raw.ratings)[0])
    low, high, step = odd.usual
    values = ", ".join(f"{v:g}" for v in np.r_[odd.far, odd.off_step][:3])
    what = "lies" if odd.count == 1 else "lie"
    kinds = []
    if len(odd.far):
        kinds.append(f"far outside the other ratings ({low:g}..{high:g})")
    if len(odd.off_step):
        kinds.append(f"off the step {step:g} the other ratings follow")
    message = (
        f"{raw.source.label}: {odd.count:,} rating{'' if odd.count == 1 else 's'} ({values}; first at "
        f"{raw.position(first)}) {what} {' and '.join(kinds)}; the "
        f"inferred scale {scale.minimum:g}..{scale.maximum:g} by {scale.step:g} includes "
        f"{'it' if odd.count == 1 else 'them'}; declare the scale to refuse such ratings (--scale "
        f"{low:g},{high:g}, or scale=({low:g}, {high:g}) in Python)"
    )
    warnings.warn(message, DataWarning, stacklevel=2)
    return scale, message
