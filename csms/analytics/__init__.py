"""Analytics and reporting on the ledger: pandas DataFrames of sessions, meter values, status
history, CDRs, utilization, trends, uptime, faults and driver behaviour; exports to Parquet and
CSV; the monthly HTML report; the grid-impact and capacity-planning figures the notebooks use.

Every reader takes a ledger (`open_ledger(url)`) or a database URL (`sqlite:///PATH` or
`postgresql://...`), and optional `since`/`until` bounds (UTC; naive moments are UTC). The
definitions (site, idle time, occupancy, uptime, fault episodes) are in each module's docstring.

    import csms.analytics as ca
    frame = ca.sessions("sqlite:///csms.db", since="2026-03-01", until="2026-04-01")
"""

from __future__ import annotations

from csms.analytics.behaviour import arrivals, driver_summary, dwell_distribution
from csms.analytics.capacity import LatencyFit, latency_fit, read_capacity
from csms.analytics.export import ExportFormat, ExportKind, export
from csms.analytics.grid import SiteLoads, limit_site_power, peak_against, site_loads
from csms.analytics.ledger import AnalyticsError, Ledger, month_bounds, open_ledger, site_of
from csms.analytics.report import monthly_report_html
from csms.analytics.sessions import rating_inputs, sessions
from csms.analytics.tables import cdrs, connections, meter_values, status_history, tariffs
from csms.analytics.uptime import fault_episodes, fault_stats, uptime
from csms.analytics.usage import (
    energy_by_period,
    hourly_heatmap,
    power_profile,
    revenue_by_period,
    stations,
    utilization,
)

__all__ = [
    "AnalyticsError",
    "ExportFormat",
    "ExportKind",
    "LatencyFit",
    "Ledger",
    "SiteLoads",
    "arrivals",
    "cdrs",
    "connections",
    "driver_summary",
    "dwell_distribution",
    "energy_by_period",
    "export",
    "fault_episodes",
    "fault_stats",
    "hourly_heatmap",
    "latency_fit",
    "limit_site_power",
    "meter_values",
    "month_bounds",
    "monthly_report_html",
    "open_ledger",
    "peak_against",
    "power_profile",
    "rating_inputs",
    "read_capacity",
    "revenue_by_period",
    "sessions",
    "site_loads",
    "site_of",
    "stations",
    "status_history",
    "tariffs",
    "uptime",
    "utilization",
]
