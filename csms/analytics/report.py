"""The monthly report: one self-contained HTML page (tables, and plots as PNG data URIs) of a
month of the ledger: summary, energy, revenue, utilization by hour and weekday, top stations,
uptime and faults.

`monthly_report_html(db_url, month, tz=...)` returns the page; `csms report monthly` writes it
and the operator API may serve it. The month runs from local midnight of its first day to local
midnight of the next month's first day in `tz`.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

import pandas as pd

from csms.analytics.ledger import month_bounds, open_ledger
from csms.analytics.plots import (
    bars_figure,
    data_uri,
    heatmap_figure,
    uptime_figure,
)
from csms.analytics.sessions import sessions
from csms.analytics.uptime import fault_episodes, fault_stats, uptime
from csms.analytics.usage import energy_by_period, hourly_heatmap, revenue_by_period, utilization

SECTIONS = ("summary", "energy", "revenue", "utilization", "top-stations", "uptime", "faults")

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .note { color: #555; font-size: 0.9em; }
"""


def _table(frame: pd.DataFrame, *, index: bool = True, digits: int = 1) -> str:
    if frame.empty:
        return '<p class="note">Nothing recorded.</p>'
    return str(
        frame.to_html(
            index=index,
            border=0,
            na_rep="-",
            float_format=lambda v: f"{v:,.{digits}f}",
            escape=True,
        )
    )


def _image(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{html.escape(alt)}">'


def _section(key: str, title: str, *parts: str) -> str:
    return (
        f'<section id="{key}">\n<h2>{html.escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"
    )


def monthly_report_html(db_url: str, month: str, *, tz: str = "UTC", top: int = 10) -> str:
    """The monthly report of the ledger at `db_url` for `month` (YYYY-MM) in time zone `tz`."""
    start, end = month_bounds(month, tz)
    with open_ledger(db_url) as ledger:
        frame = sessions(ledger, start, end)
        util = utilization(ledger, start, end)
        up = uptime(ledger, start, end)
        faults = fault_episodes(ledger, start, end)
        horizon = ledger.horizon()
    days = pd.date_range(
        start.tz_convert(tz).tz_localize(None),
        end.tz_convert(tz).tz_localize(None),
        freq="D",
        inclusive="left",
    )
    revenue = revenue_by_period(frame, "day", tz=tz)
    currencies = sorted(revenue.index.get_level_values("currency").unique())
    parts = [
        _summary(frame, util, up, faults, revenue),
        _energy_section(frame, days, month, tz),
        _revenue_section(frame, revenue, days, currencies, month, tz),
        _utilization_section(util, month, tz),
        _section(
            "top-stations",
            f"Top {top} stations by energy",
            _table(_top_stations(frame, util, up, currencies, top), index=False, digits=2),
        ),
        _uptime_section(up),
        _faults_section(faults),
    ]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    known = "" if horizon is None else f"; the ledger's data end at {horizon:%Y-%m-%d %H:%M} UTC"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>CSMS monthly report {html.escape(month)}</title>",
            f"<style>{_STYLE}</style></head><body>",
            f"<h1>Monthly report: {html.escape(month)}</h1>",
            f'<p class="note">Time zone {html.escape(tz)}{known}; generated {generated}.</p>',
            *parts,
            "</body></html>",
        ]
    )


def _dated(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    if isinstance(out.index, pd.MultiIndex):
        out.index = out.index.set_levels([f"{d:%Y-%m-%d}" for d in out.index.levels[0]], level=0)
    else:
        out.index = [f"{d:%Y-%m-%d}" for d in out.index]
    return out


def _summary(
    frame: pd.DataFrame,
    util: pd.DataFrame,
    up: pd.DataFrame,
    faults: pd.DataFrame,
    revenue: pd.DataFrame,
) -> str:
    port_s = up["port_s"].sum()
    rows: list[tuple[str, str]] = [
        ("stations", f"{len(up):,}"),
        ("sessions", f"{len(frame):,}"),
        ("energy (kWh)", f"{frame['energy_wh'].sum() / 1000:,.1f}"),
        ("tokens", f"{frame['id_tag'].nunique():,}"),
        ("drivers", f"{frame['driver_id'].nunique():,}"),
        ("mean occupancy (%)", f"{100 * util['occupancy'].mean():.1f}" if len(util) else "-"),
        ("network uptime (%)", f"{100 * up['up_s'].sum() / port_s:.2f}" if port_s > 0 else "-"),
        ("fault episodes", f"{len(faults):,}"),
    ]
    totals = revenue.groupby("currency")[["revenue_incl_vat", "revenue_excl_vat"]].sum()
    for currency, row in totals.iterrows():
        rows.append((f"revenue incl. VAT ({currency})", f"{row['revenue_incl_vat']:,.2f}"))
        rows.append((f"revenue excl. VAT ({currency})", f"{row['revenue_excl_vat']:,.2f}"))
    table = pd.DataFrame(rows, columns=["figure", "value"])
    return _section("summary", "Summary", _table(table, index=False))


def _energy_section(frame: pd.DataFrame, days: pd.DatetimeIndex, month: str, tz: str) -> str:
    daily = energy_by_period(frame, "day", tz=tz).reindex(days, fill_value=0)
    figure = bars_figure(
        daily["energy_kwh"],
        title=f"Energy delivered per day, {month}",
        ylabel="energy (kWh)",
        xlabel=f"day of the session's start ({tz})",
    )
    return _section(
        "energy",
        "Energy",
        _image(data_uri(figure), "energy per day"),
        "<h3>Per week (from Monday)</h3>",
        _table(_dated(energy_by_period(frame, "week", tz=tz))),
    )


def _revenue_section(
    frame: pd.DataFrame,
    daily: pd.DataFrame,
    days: pd.DatetimeIndex,
    currencies: list[str],
    month: str,
    tz: str,
) -> str:
    images = [
        _image(
            data_uri(
                bars_figure(
                    daily.xs(currency, level="currency")["revenue_incl_vat"].reindex(
                        days, fill_value=0.0
                    ),
                    title=f"Revenue per day, {month}",
                    ylabel=f"revenue incl. VAT ({currency})",
                    xlabel=f"day of the session's start ({tz})",
                    color="tab:orange",
                )
            ),
            f"revenue per day in {currency}",
        )
        for currency in currencies
    ]
    return _section(
        "revenue",
        "Revenue",
        *images,
        "<h3>Per week (from Monday)</h3>",
        _table(_dated(revenue_by_period(frame, "week", tz=tz)), digits=2),
        '<p class="note">Revenue: the total cost of each session\'s CDR, counted on the day the '
        "session started.</p>",
    )


def _utilization_section(util: pd.DataFrame, month: str, tz: str) -> str:
    figure = heatmap_figure(
        hourly_heatmap(util, "occupancy", tz),
        title=f"Mean connector occupancy, {month}",
        label="occupied (% of connector time)",
    )
    return _section(
        "utilization",
        "Utilization by hour and weekday",
        _image(data_uri(figure), "occupancy heatmap"),
        '<p class="note">Occupancy: the share of connector time in a session (plug-in to '
        "plug-out), averaged over the stations and the month's days of each weekday.</p>",
    )


def _top_stations(
    frame: pd.DataFrame,
    util: pd.DataFrame,
    up: pd.DataFrame,
    currencies: list[str],
    top: int,
) -> pd.DataFrame:
    per_station = frame.groupby("station_id").agg(
        sessions=("session_id", "count"), energy_kwh=("energy_wh", "sum")
    )
    per_station["energy_kwh"] /= 1000
    for currency in currencies:
        priced = frame[frame["currency"] == currency]
        per_station[f"revenue incl. VAT ({currency})"] = priced.groupby("station_id")[
            "cost_incl_vat"
        ].sum()
    per_station["occupancy_pct"] = 100 * util.groupby("station_id")["occupancy"].mean()
    per_station["uptime_pct"] = up.set_index("station_id")["uptime_pct"]
    best = per_station.sort_values(["energy_kwh", "sessions"], ascending=False).head(top)
    return best.reset_index()


def _uptime_section(up: pd.DataFrame) -> str:
    observed = up["uptime_pct"].notna().any()
    return _section(
        "uptime",
        "Uptime",
        _image(data_uri(uptime_figure(up)), "uptime per station") if observed else "",
        _table(_uptime_table(up), index=False, digits=2),
        '<p class="note">A charging port is up while its station is connected and neither the '
        "port nor the whole station (connector 0) is Faulted or Unavailable (the NEVI rule, "
        "without excluded outages). Online: the station's connection to the CSMS. Available: "
        "up and free for the next driver. Stations are counted from their first event in the "
        "ledger.</p>",
    )


def _uptime_table(up: pd.DataFrame) -> pd.DataFrame:
    table = up.sort_values(["uptime_pct", "station_id"]).copy()
    table["observed_h"] = table["observed_s"] / 3600
    table["faulted_h"] = table["faulted_s"] / 3600
    table["unavailable_h"] = table["unavailable_s"] / 3600
    columns = [
        "station_id",
        "ports",
        "observed_h",
        "online_pct",
        "uptime_pct",
        "available_pct",
        "faulted_h",
        "unavailable_h",
    ]
    return table[columns]


def _faults_section(faults: pd.DataFrame) -> str:
    if faults.empty:
        return _section("faults", "Faults", '<p class="note">No fault episodes this month.</p>')
    by_code = fault_stats(faults, "error_code")
    by_station = fault_stats(faults, "station_id").head(20)
    return _section(
        "faults",
        "Faults",
        "<h3>By error code</h3>",
        _table(by_code),
        "<h3>Stations with the most faults</h3>",
        _table(by_station),
        '<p class="note">A fault episode starts with a status Faulted or an error code other '
        "than NoError and ends at the connector's next status without either; mttr_min is the "
        "mean time to repair of the episodes that ended.</p>",
    )
