"""Statistics of paired effects over network seeds, and the verdict rule.

Every comparison in the book is paired per network seed: both conditions ran on the same
pre-trained network with the same target sequence. For seed i the effect is d_i (a difference,
or ``log(a_i / b_i)`` for a ratio of positive quantities). Over the n seeds we report

* the mean effect and its two-sided 95% confidence interval from Student's t distribution,
  ``mean +- t_{0.975, n-1} * sd / sqrt(n)`` (``scipy.stats.t.interval``);
* the effect size Cohen's d_z = mean / sd (paired);
* the two-sided p-value of the paired t-test (``scipy.stats.ttest_1samp`` of d against 0,
  identical to ``scipy.stats.ttest_rel(a, b)``).

A ratio is analysed on the log scale and reported back-transformed (the geometric-mean ratio and
its interval; no effect = 1).

Verdict: with ``paper_sign`` the direction the paper claims (+1: the effect is positive, -1:
negative) and, where the claim declares one, a band of negligible effects around no effect
(:class:`Band`, the smallest effect of interest; on the log scale for ratios),

* **negligible** when the whole 95% interval lies inside the band (the equivalence test: two
  one-sided t-tests against the band's edges, :func:`equivalence_test`, each at level 2.5%, which
  is the same event as the 95% interval inside the band),
* **agrees** when the 95% interval excludes no effect on the paper's side and reaches past the
  band's edge on that side (the effect may be material),
* **disagrees** likewise on the other side,
* **inconclusive** otherwise, and whenever fewer than 2 seeds are finite.

Without a band (``band=None``) the rule has three words: the interval excluding no effect is
enough for agrees or disagrees.
"""

from __future__ import annotations

import enum
import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

from ..fmt import fmt_num

__all__ = ["Verdict", "PairedEffect", "paired_effect", "verdict", "format_ci", "verdict_text", "CONFIDENCE", "mean_ci",
           "Band", "equivalence_test"]

CONFIDENCE = 0.95


class Verdict(str, enum.Enum):
    AGREES = "agrees"
    DISAGREES = "disagrees"
    INCONCLUSIVE = "inconclusive"
    NEGLIGIBLE = "negligible"


@dataclass(frozen=True)
class Band:
    """The smallest effect of interest of a claim: effects within ``margin`` of no effect on the
    analysis scale are negligible (a difference within +-margin; with ``log``, a ratio within
    [exp(-margin), exp(margin)]). ``reason``: why that size, in a sentence."""

    margin: float
    reason: str = ""

    def __post_init__(self):
        if not (self.margin > 0 and math.isfinite(self.margin)):
            raise ValueError(f"margin must be a positive finite number, got {self.margin!r}")

    @classmethod
    def ratio(cls, within: float, reason: str = "") -> "Band":
        """A ratio within [1 / within, within] is negligible (``within`` > 1, e.g. 1.05)."""
        if not (within > 1 and math.isfinite(within)):
            raise ValueError(f"within must be a ratio above 1, got {within!r}")
        return cls(math.log(within), reason)

    def scaled(self, factor: float) -> "Band":
        """The same band with its margin multiplied by ``factor`` (0.5: halved, 2: doubled)."""
        return Band(self.margin * factor, self.reason)

    def edges(self, log: bool) -> tuple[float, float]:
        """(low, high) on the reported scale: ratios for ``log``, differences otherwise."""
        return (math.exp(-self.margin), math.exp(self.margin)) if log else (-self.margin, self.margin)

    def text(self, log: bool, digits: int = 3) -> str:
        lo, hi = self.edges(log)
        return f"[{fmt_num(lo, digits)}, {fmt_num(hi, digits)}]" if log else f"±{fmt_num(self.margin, digits)}"


@dataclass(frozen=True)
class PairedEffect:
    """Summary of per-seed effects. On the log scale (``log=True``) ``mean``, ``ci_low`` and
    ``ci_high`` are back-transformed ratios and ``null`` is 1; ``sd`` and ``effect_size`` stay on
    the log scale."""

    n: int
    mean: float
    ci_low: float
    ci_high: float
    sd: float
    effect_size: float
    p_value: float
    log: bool
    null: float
    values: tuple
    confidence: float = CONFIDENCE
    method: str = "paired t (Student's t interval)"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["values"] = list(self.values)
        return d

    def excludes_null(self) -> int:
        """+1 if the whole interval lies above no effect, -1 if below, 0 if it covers it."""
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return 0
        if self.ci_low > self.null:
            return 1
        if self.ci_high < self.null:
            return -1
        return 0


def paired_effect(a, b=None, *, log: bool = False, confidence: float = CONFIDENCE) -> PairedEffect:
    """Per-seed effects ``a - b`` (or ``a`` alone when ``b`` is None; with ``log``: ``log(a/b)``
    or ``log(a)``), summarised as in the module docstring. Non-finite seeds are dropped."""
    a = np.asarray(a, dtype=np.float64).ravel()
    if b is not None:
        b = np.asarray(b, dtype=np.float64).ravel()
        if a.shape != b.shape:
            raise ValueError(f"paired values need one per seed on both sides, got {a.size} and {b.size}")
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.log(a) - (np.log(b) if b is not None else 0.0)
    else:
        d = a - (b if b is not None else 0.0)
    d = d[np.isfinite(d)]
    n = int(d.size)
    values = tuple(float(x) for x in (np.exp(d) if log else d))
    back = np.exp if log else (lambda x: x)
    null = 1.0 if log else 0.0
    if n == 0:
        nan = float("nan")
        return PairedEffect(0, nan, nan, nan, nan, nan, nan, log, null, values, confidence)
    m = float(d.mean())
    if n < 2:
        nan = float("nan")
        return PairedEffect(n, float(back(m)), nan, nan, nan, nan, nan, log, null, values, confidence)
    sd = float(d.std(ddof=1))
    if sd == 0.0:   # every seed the same: the interval is that value, the test is degenerate
        lo = hi = m
        p = 0.0 if m != 0 else 1.0
        dz = math.copysign(math.inf, m) if m != 0 else 0.0
    else:
        lo, hi = _st.t.interval(confidence, df=n - 1, loc=m, scale=sd / math.sqrt(n))
        p = float(_st.ttest_1samp(d, 0.0).pvalue)
        dz = m / sd
    return PairedEffect(n, float(back(m)), float(back(lo)), float(back(hi)), sd, float(dz), p, log, null, values,
                        confidence)


def mean_ci(Y, axis: int = 0, *, log: bool = False, confidence: float = CONFIDENCE):
    """Mean over ``axis`` with its two-sided Student-t interval (NaN where fewer than 2 seeds are
    finite). ``log``: on the log scale and back-transformed (geometric mean), for positive losses."""
    Y = np.asarray(Y, dtype=np.float64)
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            Y = np.log(np.where(Y > 0, Y, np.nan))
    n = np.isfinite(Y).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)      # columns with fewer than 2 seeds: NaN below
        m = np.nanmean(np.where(np.isfinite(Y), Y, np.nan), axis=axis) if Y.size else np.nan
        sd = np.nanstd(np.where(np.isfinite(Y), Y, np.nan), axis=axis, ddof=1)
        half = _st.t.ppf(0.5 + confidence / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(np.maximum(n, 1))
    half = np.where(n >= 2, half, np.nan)
    lo, hi = m - half, m + half
    if log:
        return np.exp(m), np.exp(lo), np.exp(hi)
    return m, lo, hi


def _analysis_scale(effect: PairedEffect) -> np.ndarray:
    v = np.asarray(effect.values, dtype=np.float64)
    return np.log(v) if effect.log else v


def equivalence_test(effect: PairedEffect, band: Band) -> float:
    """The p-value of the equivalence test (TOST: two one-sided one-sample t-tests of the per-seed
    effects d_i, on the log scale for ratios): H0_low: mean <= -margin against mean > -margin,
    H0_high: mean >= margin against mean < margin (``scipy.stats.ttest_1samp`` with
    ``alternative``); p = the larger of the two. p < 0.025 is the same event as the 95% Student-t
    interval lying inside (-margin, margin). NaN with fewer than 2 seeds."""
    d = _analysis_scale(effect)
    if d.size < 2:
        return float("nan")
    if float(d.std(ddof=1)) == 0.0:          # every seed the same: inside the band or not, exactly
        return 0.0 if abs(float(d.mean())) < band.margin else 1.0
    p_low = _st.ttest_1samp(d, -band.margin, alternative="greater").pvalue
    p_high = _st.ttest_1samp(d, band.margin, alternative="less").pvalue
    return float(max(p_low, p_high))


def _inside(effect: PairedEffect, band: Band) -> bool:
    lo, hi = band.edges(effect.log)
    return bool(math.isfinite(effect.ci_low) and math.isfinite(effect.ci_high) and lo < effect.ci_low
                and effect.ci_high < hi)


def verdict(effect: PairedEffect, paper_sign: int, band: Band | None = None) -> Verdict:
    """The rule of the module docstring. ``paper_sign``: +1 if the paper claims an effect above no
    effect (difference > 0, ratio > 1), -1 if below; ``band``: the claim's negligible effects
    (None: the three-word rule)."""
    if paper_sign not in (1, -1):
        raise ValueError(f"paper_sign must be +1 or -1, got {paper_sign!r}")
    if effect.n < 2:
        return Verdict.INCONCLUSIVE
    if band is not None and _inside(effect, band):
        return Verdict.NEGLIGIBLE
    side = effect.excludes_null()
    if side == 0:
        return Verdict.INCONCLUSIVE
    return Verdict.AGREES if side == paper_sign else Verdict.DISAGREES


def format_ci(values, *, log: bool = False, digits: int = 3) -> str:
    """Mean and two-sided 95% Student-t interval of per-seed ``values`` as prose,
    ``"0.0123 [0.0101, 0.0145]"`` (:func:`paired_effect`); with ``log`` the values are positive
    ratios, summarised on the log scale and shown back-transformed (geometric mean and its
    interval). One value: the value alone; none: ``n/a``. Numbers are rounded to ``digits``
    significant figures (:func:`fbctrl.fmt.fmt_num`)."""

    e = paired_effect(np.asarray(values, dtype=np.float64), log=log)
    if e.n == 0:
        return "n/a"
    if e.n == 1:
        return fmt_num(e.mean, digits)
    return f"{fmt_num(e.mean, digits)} [{fmt_num(e.ci_low, digits)}, {fmt_num(e.ci_high, digits)}]"


def verdict_text(per_seed_effect, *, direction: int = 1, band: Band | None = None) -> str:
    """The verdict of per-seed paired effects (differences, or log ratios) as prose: their 95%
    Student-t interval and :func:`verdict` (``direction`` +1: the paper claims a positive effect),
    with the paired t-test's p-value and the number of seeds: ``"agrees (p = 0.012, 4 seeds)"``;
    "cannot be judged (no data)" without seeds, and the bare verdict with one seed. ``band``: the
    claim's negligible effects on the same scale (the four-word rule; None: three words)."""
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    e = paired_effect(np.asarray(per_seed_effect, dtype=np.float64))
    if e.n == 0:
        return "cannot be judged (no data)"
    word = verdict(e, direction, band).value
    if e.n < 2:
        return f"{word} (1 seed)"
    return f"{word} (p = {fmt_num(e.p_value, 2)}, {e.n} seeds)"
