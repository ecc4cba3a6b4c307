"""The one rule for "statistically significant", used by every test the product reports.

A result is significant when its p-value is below the stated level `alpha` and, when the
claim has a direction (Insiders spend *more*, return *less*), the effect goes that way.
The level travels with the result (`alpha` next to `p_value`) so a reader can check the
verdict; nothing else (an interval, a ratio) decides it, so two parts of the product can
never disagree on whether the same figure is significant.
"""

from __future__ import annotations

import math

ALPHA = 0.05  # the level every verdict of the product is stated at


def significant(p_value: float | None, alpha: float = ALPHA, direction: bool = True) -> bool:
    """True when `p_value < alpha` and the effect goes the claimed way (`direction`)."""
    if p_value is None:
        return False
    p = float(p_value)
    return bool(math.isfinite(p) and p < alpha and direction)


def verdict_word(verdict: bool, direction_as_stated: bool | None) -> str:
    """The first word marketing reads: "True" (significant, the stated way), "False" (the
    difference goes the other way) or "Not shown" (the stated way but too small to be sure
    of, or not testable): "False: Insiders return less... 0.0% against 1.8%" read as a
    contradiction on a five-member group."""
    if verdict:
        return "True"
    return "False" if direction_as_stated is False else "Not shown"
