"""Capacity-planning figures from a Locust capacity run (`python -m loadtest.capacity`).

Owns reading the run's `capacity.csv` (one row per step and action, Locust's `Aggregated` row
included) and the least-squares line of a latency percentile against the number of chargers,
with where that line crosses a latency limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from csms.analytics.ledger import AnalyticsError

CAPACITY_COLUMNS = ("profile", "chargers", "name", "requests", "msgs_per_s", "p50_ms", "p99_ms")


def read_capacity(path: Path | str) -> pd.DataFrame:
    """A capacity run's `capacity.csv` (give the file or its directory)."""
    file = Path(path)
    if file.is_dir():
        file = file / "capacity.csv"
    try:
        frame = pd.read_csv(file, keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError) as exc:
        raise AnalyticsError(f"cannot read {file}: {exc}") from None
    missing = [c for c in CAPACITY_COLUMNS if c not in frame.columns]
    if missing:
        raise AnalyticsError(f"{file}: not a capacity CSV (missing {', '.join(missing)})")
    return frame


@dataclass(frozen=True)
class LatencyFit:
    """latency_ms = intercept_ms + slope_ms_per_charger x chargers, fitted on `points` steps."""

    metric: str
    slope_ms_per_charger: float
    intercept_ms: float
    r2: float
    points: int

    def predict(self, chargers: np.typing.ArrayLike) -> np.typing.NDArray[np.float64]:
        return self.intercept_ms + self.slope_ms_per_charger * np.asarray(chargers, dtype=float)

    def chargers_at(self, limit_ms: float) -> float | None:
        """Chargers at which the line reaches `limit_ms` (None when it does not rise)."""
        if self.slope_ms_per_charger <= 0:
            return None
        return (limit_ms - self.intercept_ms) / self.slope_ms_per_charger


def latency_fit(
    frame: pd.DataFrame,
    *,
    profile: str = "realistic",
    metric: str = "p99_ms",
    name: str = "Aggregated",
) -> LatencyFit:
    """The least-squares line of `metric` for action `name` against chargers."""
    rows = frame[(frame["profile"] == profile) & (frame["name"] == name)]
    if len(rows) < 2:
        raise AnalyticsError(f"need at least two {profile} steps of {name} to fit a line")
    x = rows["chargers"].to_numpy(dtype=float)
    y = rows[metric].to_numpy(dtype=float)
    slope, intercept = np.polyfit(x, y, 1)
    residual = y - (intercept + slope * x)
    spread = ((y - y.mean()) ** 2).sum()
    r2 = 1.0 - (residual**2).sum() / spread if spread > 0 else 1.0
    return LatencyFit(metric, float(slope), float(intercept), float(r2), len(rows))
