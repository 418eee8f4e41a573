"""Matplotlib figures of the analytics frames, and their PNG form for HTML reports.

Every figure has a title, labelled axes and units. Figures are made with matplotlib's object
API (`Figure`, Agg canvas), not pyplot's global state, so a server may render them in threads.
"""

from __future__ import annotations

import base64
import io

import pandas as pd
from matplotlib.figure import Figure

_SIZE = (8.0, 3.4)


def to_png(figure: Figure, dpi: int = 96) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def data_uri(figure: Figure) -> str:
    """The figure as a `data:image/png;base64,...` URI for an <img src>."""
    return "data:image/png;base64," + base64.b64encode(to_png(figure)).decode("ascii")


def bars_figure(
    values: pd.Series, *, title: str, ylabel: str, xlabel: str = "day", color: str = "tab:blue"
) -> Figure:
    """Bars of a series indexed by period starts (days, weeks, months)."""
    figure = Figure(figsize=_SIZE)
    axes = figure.subplots()
    labels = [
        f"{stamp:%d %b}" if hasattr(stamp, "strftime") else str(stamp) for stamp in values.index
    ]
    axes.bar(range(len(values)), values.to_numpy(dtype=float), color=color)
    step = max(1, len(labels) // 16)
    axes.set_xticks(range(0, len(labels), step), labels[::step], rotation=45, ha="right")
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", alpha=0.3)
    return figure


def heatmap_figure(heat: pd.DataFrame, *, title: str, label: str, percent: bool = True) -> Figure:
    """A weekday x hour-of-day table (as `hourly_heatmap` or `arrivals` make) as a heatmap."""
    figure = Figure(figsize=(8.0, 3.2))
    axes = figure.subplots()
    values = heat.to_numpy(dtype=float) * (100.0 if percent else 1.0)
    image = axes.imshow(values, aspect="auto", cmap="viridis", vmin=0)
    axes.set_xticks(range(0, 24, 2), [f"{h:02d}" for h in range(0, 24, 2)])
    axes.set_yticks(range(len(heat.index)), list(heat.index))
    axes.set_xlabel("hour of day (local time)")
    axes.set_ylabel("weekday")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, label=label)
    return figure


def uptime_figure(uptime: pd.DataFrame, *, worst: int = 20) -> Figure:
    """The stations with the lowest uptime, as horizontal bars (percent)."""
    rows = uptime.dropna(subset=["uptime_pct"]).nsmallest(worst, "uptime_pct")[::-1]
    figure = Figure(figsize=(8.0, max(2.0, 0.28 * len(rows) + 1.2)))
    axes = figure.subplots()
    axes.barh(rows["station_id"], rows["uptime_pct"], color="tab:green", label="uptime")
    axes.barh(rows["station_id"], rows["online_pct"], fill=False, edgecolor="black", label="online")
    low = float(rows["uptime_pct"].min()) if len(rows) else 0.0
    axes.set_xlim(max(0.0, min(low, 100.0) - 5.0), 100.0)
    axes.set_xlabel("share of the period (%)")
    axes.set_ylabel("station")
    axes.set_title(f"Uptime of the {len(rows)} least available stations")
    axes.legend(loc="lower left", fontsize=8)
    return figure


def load_curve_figure(
    power_kw: pd.Series | pd.DataFrame,
    *,
    title: str,
    tz: str = "UTC",
    limit_kw: float | None = None,
    limit_label: str = "limit",
) -> Figure:
    """Average power per bucket against local time, with an optional limit line."""
    figure = Figure(figsize=_SIZE)
    axes = figure.subplots()
    frame = power_kw.to_frame() if isinstance(power_kw, pd.Series) else power_kw
    local = frame.index.tz_convert(tz).tz_localize(None)
    for column in frame.columns:
        axes.step(local, frame[column].to_numpy(dtype=float), where="post", label=str(column))
    if limit_kw is not None:
        axes.axhline(
            limit_kw, color="tab:red", linestyle="--", label=f"{limit_label} {limit_kw:g} kW"
        )
    axes.set_title(title)
    axes.set_xlabel(f"time ({tz})")
    axes.set_ylabel("power (kW)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.autofmt_xdate()
    return figure
