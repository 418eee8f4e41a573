"""Results of a run: every message and session as pandas DataFrames, saved to Parquet.

A results directory holds `messages.parquet`, `sessions.parquet`, `differences.parquet` and
`summary.json`; `simulator report DIR` reads it back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

FRAMES = ("messages", "sessions", "differences")


def frame_of(records: Iterable[Any], columns: list[str] | None = None) -> pd.DataFrame:
    """A DataFrame with one row per dataclass record (columns kept even when empty)."""
    rows = list(records)
    if not rows:
        return pd.DataFrame(columns=columns or [])
    # Flat records: a shallow read of each field (dataclasses.asdict deep-copies, slowly).
    names = [f.name for f in dataclasses.fields(rows[0])]
    return pd.DataFrame.from_records(
        [tuple(getattr(r, name) for name in names) for r in rows], columns=names
    )


def save_results(out: Path, frames: dict[str, pd.DataFrame], summary: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(out / f"{name}.parquet", index=False)
    (out / "summary.json").write_bytes(
        orjson.dumps(summary, option=orjson.OPT_INDENT_2, default=str)
    )


class ResultsError(Exception):
    """A results directory that cannot be read."""


def load_results(out: Path) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    if not (out / "summary.json").exists():
        raise ResultsError(f"{out}: not a results directory (no summary.json)")
    try:
        summary = orjson.loads((out / "summary.json").read_bytes())
        frames = {
            name: pd.read_parquet(out / f"{name}.parquet")
            for name in FRAMES
            if (out / f"{name}.parquet").exists()
        }
    except (OSError, orjson.JSONDecodeError, ValueError) as exc:
        raise ResultsError(f"{out}: unreadable results: {exc}") from None
    return frames, summary
