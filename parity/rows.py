"""The rows of the parity checks: what was compared, the worst difference found and its tolerance (absolute for
tensors, relative for losses, as the parity issue states them; never loosened to make a check pass)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["TOLERANCES", "Check", "format_table", "max_abs", "rel"]

TOLERANCES = {"forward": 1e-5, "loss": 1e-6, "gradient": 1e-5, "adam_step": 1e-5}


@dataclass
class Check:
    model: str
    check: str
    worst: float
    tolerance: float
    kind: str  # "abs", "rel" or "exact"

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.worst)) and self.worst <= self.tolerance

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def max_abs(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))


def rel(a: float, b: float) -> float:
    return abs(float(a) - float(b)) / max(abs(float(b)), 1e-30)


def format_table(rows: list[Check]) -> str:
    lines = [f"{'model':<10} {'check':<58} {'worst':>10} {'tolerance':>10}  result", "-" * 100]
    for row in rows:
        lines.append(
            f"{row.model:<10} {row.check:<58} {row.worst:>10.3g} {row.tolerance:>10.3g}  "
            f"{'ok' if row.passed else 'FAIL'} ({row.kind})"
        )
    failed = sum(not r.passed for r in rows)
    lines.append("-" * 100)
    lines.append(f"{len(rows) - failed} passed, {failed} failed")
    return "\n".join(lines)
