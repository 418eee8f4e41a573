"""`ApiStore`: what the operator API, its alerts and its maintenance services keep in the
ledger database (SQLite or PostgreSQL, as `SqliteStore`).

API keys (hashed), the audit log, station/token/driver administration, session queries with
filters and pages, local list versions, alerts, uploaded files' metadata, firmware files and
campaigns, configuration snapshots, the desired configuration, and reads of the 2.x device
model. It extends `SqliteStore` on a connection of its own; every write is one
`BEGIN IMMEDIATE` transaction, so it waits for the ledger's batch rather than failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from csms.storage.base import StoreError
from csms.storage.sqlite import SqliteStore, TokenRow
from csms.storage.timestamps import to_text

#: Alert thresholds an operator may change, with their defaults.
ALERT_SETTING_DEFAULTS: dict[str, float] = {
    "stuck_session_after_s": 900.0,
    "boot_loop_boots": 3.0,
    "boot_loop_window_s": 600.0,
    "offline_grace_s": 0.0,
}


class Conflict(StoreError):
    """The request clashes with what is stored (a duplicate, a thing still in use)."""


class NotFound(StoreError):
    """The thing the request names does not exist."""


@dataclass(frozen=True)
class SessionFilter:
    station_id: str | None = None
    id_tag: str | None = None
    driver_id: str | None = None
    status: str | None = None
    started_from: datetime | None = None
    started_before: datetime | None = None


class ApiStore(SqliteStore):
    # -- API keys and the audit log ------------------------------------------------------

    def create_api_key(
        self, name: str, scope: str, key_hash: str, prefix: str, now: datetime
    ) -> None:
        with self._write():
            if self._db.execute("SELECT 1 FROM api_keys WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"an API key named {name!r} exists already")
            self._db.execute(
                "INSERT INTO api_keys (name, scope, key_hash, prefix, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (name, scope, key_hash, prefix, to_text(now)),
            )

    def api_key_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        rows = self._rows(
            "SELECT name, scope FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
            (key_hash,),
        )
        return rows[0] if rows else None

    def list_api_keys(self) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT name, scope, prefix, created_at, revoked_at FROM api_keys ORDER BY name"
        )

    def revoke_api_key(self, name: str, now: datetime) -> None:
        with self._write():
            changed = self._db.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                (to_text(now), name),
            ).rowcount
            if not changed:
                raise NotFound(f"no active API key named {name!r}")

    def write_audit(
        self,
        at: datetime,
        key_name: str | None,
        method: str,
        path: str,
        status_code: int,
        body: str | None,
        remote: str | None,
    ) -> None:
        with self._write():
            self._db.execute(
                "INSERT INTO audit_log (at, key_name, method, path, status_code, body, remote)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (to_text(at), key_name, method, path, status_code, body, remote),
            )

    def list_audit(
        self, *, limit: int, before_id: int | None = None, key_name: str | None = None
    ) -> list[dict[str, Any]]:
        clauses, params = _clauses(id_lt=before_id, key_name=key_name)
        return self._rows(
            f"SELECT * FROM audit_log{clauses} ORDER BY id DESC LIMIT ?", (*params, limit)
        )

    # -- stations ------------------------------------------------------------------------

    def stations_with_connectors(self) -> list[dict[str, Any]]:
        stations = self._rows(
            "SELECT id, registered, registration_status, vendor, model, serial_number,"
            " charge_box_serial, firmware_version, firmware_status, diagnostics_status,"
            " security_profile, online, last_boot_at, last_heartbeat_at, last_seen_at,"
            " created_at FROM stations ORDER BY id"
        )
        connectors: dict[str, list[dict[str, Any]]] = {}
        for row in self._rows(
            "SELECT station_id, connector_id, status, error_code, info, updated_at"
            " FROM connectors ORDER BY station_id, connector_id"
        ):
            connectors.setdefault(row.pop("station_id"), []).append(row)
        for station in stations:
            station["connectors"] = connectors.get(station["id"], [])
        return stations

    def create_station(self, station_id: str, security_profile: int) -> None:
        if not self.add_station(station_id, security_profile):
            raise Conflict(f"station {station_id!r} is registered already")

    def update_station(
        self, station_id: str, *, security_profile: int | None, registered: bool | None
    ) -> None:
        with self._write():
            if not self._exists("stations", "id", station_id):
                raise NotFound(f"no station {station_id!r}")
            if security_profile is not None:
                self._db.execute(
                    "UPDATE stations SET security_profile = ? WHERE id = ?",
                    (security_profile, station_id),
                )
            if registered is not None:
                self._db.execute(
                    "UPDATE stations SET registered = ? WHERE id = ?",
                    (int(registered), station_id),
                )

    def delete_station(self, station_id: str) -> None:
        """Forget the station and its connectors; its sessions and history stay."""
        with self._write():
            row = self._db.execute(
                "SELECT online FROM stations WHERE id = ?", (station_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no station {station_id!r}")
            if row[0]:
                raise Conflict(f"station {station_id!r} is connected; it cannot be deleted now")
            self._db.execute("DELETE FROM connectors WHERE station_id = ?", (station_id,))
            self._db.execute("DELETE FROM stations WHERE id = ?", (station_id,))

    # -- tokens and drivers --------------------------------------------------------------

    _TOKEN_SELECT = (
        "SELECT id_tag, status, expiry, parent_id_tag, max_active_transactions, driver_id,"
        " created_at, updated_at FROM id_tokens"
    )

    def tokens(self, driver_id: str | None = None) -> list[dict[str, Any]]:
        clauses, params = _clauses(driver_id=driver_id)
        return self._rows(f"{self._TOKEN_SELECT}{clauses} ORDER BY id_tag", params)

    def token(self, id_tag: str) -> dict[str, Any] | None:
        rows = self._rows(f"{self._TOKEN_SELECT} WHERE id_tag = ?", (id_tag,))
        return rows[0] if rows else None

    def create_token(self, token: TokenRow, driver_id: str | None) -> None:
        token.check()
        with self._write():
            if self._exists("id_tokens", "id_tag", token.id_tag):
                raise Conflict(f"id token {token.id_tag!r} exists already")
            if driver_id is not None and not self._exists("drivers", "id", driver_id):
                raise NotFound(f"no driver {driver_id!r}")
            now = _now_text()
            self._db.execute(
                "INSERT INTO id_tokens (id_tag, status, expiry, parent_id_tag,"
                " max_active_transactions, driver_id, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token.id_tag,
                    token.status,
                    to_text(token.expiry),
                    token.parent_id_tag,
                    token.max_active_transactions,
                    driver_id,
                    now,
                    now,
                ),
            )

    def update_token(self, id_tag: str, changes: Mapping[str, Any]) -> None:
        """Change the given fields of a token: status, expiry (stored text), parent_id_tag,
        max_active_transactions, driver_id."""
        current = self.token(id_tag)
        if current is None:
            raise NotFound(f"no id token {id_tag!r}")
        merged = {**current, **changes}
        TokenRow(
            id_tag,
            merged["status"],
            None,
            merged["parent_id_tag"],
            merged["max_active_transactions"],
        ).check()
        with self._write():
            driver_id = merged["driver_id"]
            if driver_id is not None and not self._exists("drivers", "id", driver_id):
                raise NotFound(f"no driver {driver_id!r}")
            self._db.execute(
                "UPDATE id_tokens SET status = ?, expiry = ?, parent_id_tag = ?,"
                " max_active_transactions = ?, driver_id = ?, updated_at = ? WHERE id_tag = ?",
                (
                    merged["status"],
                    merged["expiry"],
                    merged["parent_id_tag"],
                    merged["max_active_transactions"],
                    driver_id,
                    _now_text(),
                    id_tag,
                ),
            )

    def delete_token(self, id_tag: str) -> None:
        """Forget a token: it is Invalid from now on; sessions keep their id tag."""
        with self._write():
            if not self._db.execute("DELETE FROM id_tokens WHERE id_tag = ?", (id_tag,)).rowcount:
                raise NotFound(f"no id token {id_tag!r}")
            self._db.execute("DELETE FROM driver_blocks WHERE id_tag = ?", (id_tag,))

    def driver(self, driver_id: str) -> dict[str, Any] | None:
        found = [d for d in self.list_drivers() if d["id"] == driver_id]
        if not found:
            return None
        driver = found[0]
        driver["id_tokens"] = self.tokens(driver_id)
        driver["blocked"] = bool(
            self._db.execute(
                "SELECT 1 FROM driver_blocks WHERE driver_id = ?", (driver_id,)
            ).fetchone()
        )
        return driver

    def delete_driver(self, driver_id: str) -> None:
        """Forget a driver with no money on record; their tokens stay, unassigned."""
        with self._write():
            if not self._exists("drivers", "id", driver_id):
                raise NotFound(f"no driver {driver_id!r}")
            if self._db.execute(
                "SELECT 1 FROM posting_legs WHERE account LIKE ? LIMIT 1", (f"%:{driver_id}",)
            ).fetchone():
                raise Conflict(
                    f"driver {driver_id!r} has postings on the ledger; they are kept, so the"
                    " driver is too"
                )
            self._db.execute(
                "UPDATE id_tokens SET driver_id = NULL WHERE driver_id = ?", (driver_id,)
            )
            self._db.execute("DELETE FROM driver_blocks WHERE driver_id = ?", (driver_id,))
            self._db.execute("DELETE FROM drivers WHERE id = ?", (driver_id,))

    def block_driver(self, driver_id: str) -> int:
        """Block every token of the driver; `unblock_driver` restores what each was."""
        with self._write():
            if not self._exists("drivers", "id", driver_id):
                raise NotFound(f"no driver {driver_id!r}")
            rows = self._db.execute(
                "SELECT id_tag, status FROM id_tokens WHERE driver_id = ? AND status != 'Blocked'",
                (driver_id,),
            ).fetchall()
            self._db.executemany(
                "INSERT OR IGNORE INTO driver_blocks (driver_id, id_tag, previous_status)"
                " VALUES (?, ?, ?)",
                [(driver_id, tag, status) for tag, status in rows],
            )
            self._db.execute(
                "UPDATE id_tokens SET status = 'Blocked', updated_at = ? WHERE driver_id = ?",
                (_now_text(), driver_id),
            )
            return len(rows)

    def unblock_driver(self, driver_id: str) -> int:
        with self._write():
            if not self._exists("drivers", "id", driver_id):
                raise NotFound(f"no driver {driver_id!r}")
            rows = self._db.execute(
                "SELECT id_tag, previous_status FROM driver_blocks WHERE driver_id = ?",
                (driver_id,),
            ).fetchall()
            now = _now_text()
            self._db.executemany(
                "UPDATE id_tokens SET status = ?, updated_at = ? WHERE id_tag = ?",
                [(status, now, tag) for tag, status in rows],
            )
            self._db.execute("DELETE FROM driver_blocks WHERE driver_id = ?", (driver_id,))
            return len(rows)

    def local_list_tokens(self) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT id_tag, status, expiry, parent_id_tag FROM id_tokens ORDER BY id_tag"
        )

    def next_local_list_version(self, station_id: str) -> int:
        (latest,) = self._db.execute(
            "SELECT IFNULL(MAX(version), 0) FROM local_list_versions WHERE station_id = ?",
            (station_id,),
        ).fetchone()
        return int(latest) + 1

    def record_local_list(
        self,
        station_id: str,
        version: int,
        update_type: str,
        entries: int,
        status: str,
        now: datetime,
    ) -> None:
        with self._write():
            self._db.execute(
                "INSERT INTO local_list_versions (station_id, version, update_type, entries,"
                " status, sent_at) VALUES (?, ?, ?, ?, ?, ?)",
                (station_id, version, update_type, entries, status, to_text(now)),
            )

    def local_list_versions(self, station_id: str) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT version, update_type, entries, status, sent_at FROM local_list_versions"
            " WHERE station_id = ? ORDER BY id DESC",
            (station_id,),
        )

    # -- sessions ------------------------------------------------------------------------

    def query_sessions(
        self, where: SessionFilter, *, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of sessions (newest first) and how many match in all."""
        clauses: list[str] = []
        params: list[Any] = []
        for sql, value in (
            ("transactions.station_id = ?", where.station_id),
            ("transactions.id_tag = ?", where.id_tag),
            (
                "transactions.id_tag IN (SELECT id_tag FROM id_tokens WHERE driver_id = ?)",
                where.driver_id,
            ),
            ("transactions.status = ?", where.status),
            ("transactions.started_at >= ?", to_text(where.started_from)),
            ("transactions.started_at < ?", to_text(where.started_before)),
        ):
            if value is not None:
                clauses.append(sql)
                params.append(value)
        condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._sessions(
            f"{self._SESSION_SELECT}{condition} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        (total,) = self._db.execute(
            f"SELECT COUNT(*) FROM transactions{condition}", params
        ).fetchone()
        return rows, int(total)

    def active_sessions_last_meter(self) -> list[dict[str, Any]]:
        """Active sessions with when their last meter sample (or their start) arrived."""
        return self._rows(
            "SELECT t.id, t.station_id, t.connector_id, COALESCE((SELECT MAX(m.received_at)"
            " FROM meter_samples m WHERE IFNULL(m.transaction_id, 0) = t.id),"
            " t.start_received_at) AS last_received_at"
            " FROM transactions t WHERE t.status = 'Active'"
        )

    def fleet_totals(self) -> dict[str, float]:
        """Active sessions and energy delivered (Wh) so far, for the metrics."""
        active, energy = self._db.execute(
            "SELECT SUM(CASE WHEN status = 'Active' THEN 1 ELSE 0 END), SUM(COALESCE(energy_wh,"
            " last_meter_wh - meter_start_wh, 0)) FROM transactions"
        ).fetchone()
        return {"active_sessions": float(active or 0), "energy_wh": float(energy or 0)}

    # -- alerts --------------------------------------------------------------------------

    def raise_alert(
        self,
        kind: str,
        subject: str,
        station_id: str | None,
        severity: str,
        message: str,
        detail: Mapping[str, Any],
        now: datetime,
    ) -> dict[str, Any] | None:
        """Open an alert; None if one of this kind for this subject is open already.

        One statement, not a check and an insert: nodes sharing a database may raise the
        same alert at once, and the unique index of open alerts (`alerts_open`) decides
        which one opens it; the others insert nothing."""
        with self._write():
            rows = self._db.execute(
                "INSERT INTO alerts (kind, subject, station_id, severity, message, detail, state,"
                " raised_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?)"
                " ON CONFLICT (kind, subject) WHERE state != 'cleared' DO NOTHING RETURNING id",
                (
                    kind,
                    subject,
                    station_id,
                    severity,
                    message,
                    orjson.dumps(dict(detail)).decode(),
                    to_text(now),
                ),
            ).fetchall()
        if not rows:
            return None
        ((alert_id,),) = rows
        return self.alert(int(alert_id))

    def clear_open_alerts(
        self, kind: str, subject: str, by: str, now: datetime
    ) -> list[dict[str, Any]]:
        """Clear the open alert of this kind and subject, if any; the alerts cleared."""
        with self._write():
            ids = [
                alert_id
                for (alert_id,) in self._db.execute(
                    "SELECT id FROM alerts WHERE kind = ? AND subject = ? AND state != 'cleared'",
                    (kind, subject),
                )
            ]
            self._db.executemany(
                "UPDATE alerts SET state = 'cleared', cleared_at = ?, cleared_by = ? WHERE id = ?",
                [(to_text(now), by, alert_id) for alert_id in ids],
            )
        return [a for a in (self.alert(i) for i in ids) if a is not None]

    def open_alert_subjects(self, kind: str) -> set[str]:
        return {
            subject
            for (subject,) in self._db.execute(
                "SELECT subject FROM alerts WHERE kind = ? AND state != 'cleared'", (kind,)
            )
        }

    def acknowledge_alert(self, alert_id: int, by: str, now: datetime) -> dict[str, Any]:
        with self._write():
            row = self._db.execute("SELECT state FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                raise NotFound(f"no alert {alert_id}")
            if row[0] == "cleared":
                raise Conflict(f"alert {alert_id} is cleared already")
            self._db.execute(
                "UPDATE alerts SET state = 'acknowledged', acknowledged_at = ?,"
                " acknowledged_by = ? WHERE id = ?",
                (to_text(now), by, alert_id),
            )
        found = self.alert(alert_id)
        assert found is not None
        return found

    def clear_alert(self, alert_id: int, by: str, now: datetime) -> dict[str, Any]:
        with self._write():
            row = self._db.execute("SELECT state FROM alerts WHERE id = ?", (alert_id,)).fetchone()
            if row is None:
                raise NotFound(f"no alert {alert_id}")
            if row[0] != "cleared":
                self._db.execute(
                    "UPDATE alerts SET state = 'cleared', cleared_at = ?, cleared_by = ?"
                    " WHERE id = ?",
                    (to_text(now), by, alert_id),
                )
        found = self.alert(alert_id)
        assert found is not None
        return found

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM alerts WHERE id = ?", (alert_id,))
        return _alert_row(rows[0]) if rows else None

    def list_alerts(
        self,
        *,
        state: str | None = None,
        station_id: str | None = None,
        kind: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        if state == "open":
            clauses, params = _clauses(station_id=station_id, kind=kind)
            clauses += (" AND" if clauses else " WHERE") + " state != 'cleared'"
        else:
            clauses, params = _clauses(state=state, station_id=station_id, kind=kind)
        rows = self._rows(
            f"SELECT * FROM alerts{clauses} ORDER BY id DESC LIMIT ?", (*params, limit)
        )
        return [_alert_row(row) for row in rows]

    def alert_settings(self) -> dict[str, float]:
        stored = dict(self._db.execute("SELECT key, value FROM alert_settings").fetchall())
        return {
            key: float(stored.get(key, default)) for key, default in ALERT_SETTING_DEFAULTS.items()
        }

    def set_alert_settings(self, values: Mapping[str, float]) -> dict[str, float]:
        unknown = set(values) - set(ALERT_SETTING_DEFAULTS)
        if unknown:
            raise StoreError(f"unknown alert settings: {', '.join(sorted(unknown))}")
        with self._write():
            self._db.executemany(
                "INSERT INTO alert_settings (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list(values.items()),
            )
        return self.alert_settings()

    # -- uploads and firmware files --------------------------------------------------------

    def create_upload_slot(self, token: str, station_id: str, now: datetime) -> None:
        with self._write():
            self._db.execute(
                "INSERT INTO upload_slots (token, station_id, created_at) VALUES (?, ?, ?)",
                (token, station_id, to_text(now)),
            )

    def upload_slot_station(self, token: str) -> str | None:
        row = self._db.execute(
            "SELECT station_id FROM upload_slots WHERE token = ?", (token,)
        ).fetchone()
        return None if row is None else str(row[0])

    def record_upload(
        self,
        station_id: str,
        file_name: str,
        stored_as: str,
        size: int,
        sha256: str,
        content_type: str | None,
        now: datetime,
    ) -> int:
        with self._write():
            ((upload_id,),) = self._db.execute(
                "INSERT INTO uploads (station_id, file_name, stored_as, size, sha256,"
                " content_type, uploaded_at) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (station_id, file_name, stored_as, size, sha256, content_type, to_text(now)),
            ).fetchall()
        return int(upload_id)

    def uploads(self, station_id: str) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT id, station_id, file_name, size, sha256, content_type, uploaded_at"
            " FROM uploads WHERE station_id = ? ORDER BY id DESC",
            (station_id,),
        )

    def upload(self, upload_id: int) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        return rows[0] if rows else None

    def record_firmware(self, name: str, size: int, sha256: str, now: datetime) -> None:
        with self._write():
            self._db.execute(
                "INSERT INTO firmware_files (name, size, sha256, uploaded_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET size = excluded.size,"
                " sha256 = excluded.sha256, uploaded_at = excluded.uploaded_at",
                (name, size, sha256, to_text(now)),
            )

    def firmware_files(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM firmware_files ORDER BY name")

    def firmware_file(self, name: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT * FROM firmware_files WHERE name = ?", (name,))
        return rows[0] if rows else None

    def delete_firmware(self, name: str) -> None:
        with self._write():
            if self._db.execute(
                "SELECT 1 FROM firmware_campaigns WHERE firmware = ? AND state = 'running'",
                (name,),
            ).fetchone():
                raise Conflict(f"firmware {name!r} is in a running campaign")
            if not self._db.execute("DELETE FROM firmware_files WHERE name = ?", (name,)).rowcount:
                raise NotFound(f"no firmware file {name!r}")

    # -- firmware campaigns ----------------------------------------------------------------

    def create_campaign(
        self,
        *,
        name: str,
        firmware: str,
        location: str,
        stations: Sequence[str],
        batch_size: int,
        start_at: datetime,
        retries: int,
        retry_interval: int,
        target_timeout_s: float,
        now: datetime,
    ) -> int:
        with self._write():
            if not self._exists("firmware_files", "name", firmware):
                raise NotFound(f"no firmware file {firmware!r}")
            known = {sid for (sid,) in self._db.execute("SELECT id FROM stations")}
            missing = [s for s in stations if s not in known]
            if missing:
                raise NotFound(f"no station {', '.join(repr(s) for s in missing[:5])}")
            ((campaign_id,),) = self._db.execute(
                "INSERT INTO firmware_campaigns (name, firmware, location, batch_size, start_at,"
                " retries, retry_interval, target_timeout_s, state, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?) RETURNING id",
                (
                    name,
                    firmware,
                    location,
                    batch_size,
                    to_text(start_at),
                    retries,
                    retry_interval,
                    target_timeout_s,
                    to_text(now),
                    to_text(now),
                ),
            ).fetchall()
            self._db.executemany(
                "INSERT INTO campaign_targets (campaign_id, station_id, state, updated_at)"
                " VALUES (?, ?, 'pending', ?)",
                [(campaign_id, station, to_text(now)) for station in dict.fromkeys(stations)],
            )
        return int(campaign_id)

    def campaigns(self, state: str | None = None) -> list[dict[str, Any]]:
        clauses, params = _clauses(state=state)
        campaigns = self._rows(
            f"SELECT * FROM firmware_campaigns{clauses} ORDER BY id DESC", params
        )
        for campaign in campaigns:
            campaign["progress"] = dict(
                self._db.execute(
                    "SELECT state, COUNT(*) FROM campaign_targets WHERE campaign_id = ?"
                    " GROUP BY state",
                    (campaign["id"],),
                ).fetchall()
            )
        return campaigns

    def campaign(self, campaign_id: int) -> dict[str, Any] | None:
        rows = [c for c in self.campaigns() if c["id"] == campaign_id]
        if not rows:
            return None
        campaign = rows[0]
        campaign["targets"] = self.campaign_targets(campaign_id)
        campaign["failures"] = [t for t in campaign["targets"] if t["state"] == "failed"]
        return campaign

    def campaign_targets(self, campaign_id: int) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT station_id, state, attempts, firmware_status, error, started_at, updated_at"
            " FROM campaign_targets WHERE campaign_id = ? ORDER BY station_id",
            (campaign_id,),
        )

    def update_target(
        self,
        campaign_id: int,
        station_id: str,
        now: datetime,
        *,
        state: str,
        firmware_status: str | None = None,
        error: str | None = None,
        started: bool = False,
    ) -> None:
        with self._write():
            self._db.execute(
                "UPDATE campaign_targets SET state = ?,"
                " firmware_status = COALESCE(?, firmware_status), error = ?, updated_at = ?,"
                " attempts = attempts + ?, started_at = CASE WHEN ? = 1 THEN ? ELSE started_at END"
                " WHERE campaign_id = ? AND station_id = ?",
                (
                    state,
                    firmware_status,
                    error,
                    to_text(now),
                    int(started),
                    int(started),
                    to_text(now),
                    campaign_id,
                    station_id,
                ),
            )

    def set_campaign_state(self, campaign_id: int, state: str, now: datetime) -> None:
        with self._write():
            if not self._db.execute(
                "UPDATE firmware_campaigns SET state = ?, updated_at = ? WHERE id = ?",
                (state, to_text(now), campaign_id),
            ).rowcount:
                raise NotFound(f"no campaign {campaign_id}")

    def retry_failed_targets(self, campaign_id: int, now: datetime) -> int:
        with self._write():
            if not self._exists("firmware_campaigns", "id", campaign_id):
                raise NotFound(f"no campaign {campaign_id}")
            count = self._db.execute(
                "UPDATE campaign_targets SET state = 'pending', error = NULL, updated_at = ?"
                " WHERE campaign_id = ? AND state = 'failed'",
                (to_text(now), campaign_id),
            ).rowcount
            self._db.execute(
                "UPDATE firmware_campaigns SET state = 'running', updated_at = ? WHERE id = ?",
                (to_text(now), campaign_id),
            )
        return count

    # -- configuration -----------------------------------------------------------------------

    def save_config_snapshot(self, station_id: str, body: Mapping[str, Any], now: datetime) -> int:
        with self._write():
            ((snapshot_id,),) = self._db.execute(
                "INSERT INTO config_snapshots (station_id, taken_at, body) VALUES (?, ?, ?)"
                " RETURNING id",
                (station_id, to_text(now), orjson.dumps(dict(body)).decode()),
            ).fetchall()
        return int(snapshot_id)

    def config_snapshots(self, station_id: str, limit: int = 20) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT id, taken_at, body FROM config_snapshots WHERE station_id = ?"
            " ORDER BY id DESC LIMIT ?",
            (station_id, limit),
        )
        for row in rows:
            row["configuration"] = orjson.loads(row.pop("body"))
        return rows

    def desired_config(self, station_id: str) -> dict[str, str]:
        """The fleet-wide desired values, overridden by the station's own."""
        rows = self._db.execute(
            "SELECT key, value FROM desired_config WHERE station_id IN ('', ?)"
            " ORDER BY station_id = ''  DESC",
            (station_id,),
        ).fetchall()
        return {key: value for key, value in rows}

    def set_desired_config(self, station_id: str, values: Mapping[str, str | None]) -> None:
        """Set desired values (`station_id` '' for the fleet); None removes a key."""
        with self._write():
            for key, value in values.items():
                if value is None:
                    self._db.execute(
                        "DELETE FROM desired_config WHERE station_id = ? AND key = ?",
                        (station_id, key),
                    )
                else:
                    self._db.execute(
                        "INSERT INTO desired_config (station_id, key, value) VALUES (?, ?, ?)"
                        " ON CONFLICT (station_id, key) DO UPDATE SET value = excluded.value",
                        (station_id, key, value),
                    )

    # -- the device model (2.x) ---------------------------------------------------------------

    def device_variables(
        self, station_id: str, *, component: str | None = None, variable: str | None = None
    ) -> list[dict[str, Any]]:
        """The station's reported device model, one row per variable attribute, optionally
        only one component's or one variable's (exact names). The stored '' and 0 that stand
        for an absent instance, EVSE or connector come back as None."""
        clauses, params = _clauses(station_id=station_id, component=component, variable=variable)
        rows = self._rows(
            "SELECT component, component_instance, evse_id, connector_id, variable,"
            " variable_instance, attribute_type, value, mutability, data_type, unit,"
            f" report_id, updated_at FROM device_model{clauses}"
            " ORDER BY component, component_instance, evse_id, connector_id, variable,"
            " variable_instance, attribute_type",
            params,
        )
        for row in rows:
            for name in ("component_instance", "evse_id", "connector_id", "variable_instance"):
                row[name] = row[name] or None
        return rows

    # -- helpers -----------------------------------------------------------------------------

    def _exists(self, table: str, column: str, value: Any) -> bool:
        return (
            self._db.execute(f"SELECT 1 FROM {table} WHERE {column} = ?", (value,)).fetchone()
            is not None
        )


def _clauses(**conditions: Any) -> tuple[str, list[Any]]:
    """` WHERE a = ? AND ...` for the conditions that are not None (`x_lt` means `x < ?`)."""
    parts, params = [], []
    for name, value in conditions.items():
        if value is None:
            continue
        column, op = (name[:-3], "<") if name.endswith("_lt") else (name, "=")
        parts.append(f"{column} {op} ?")
        params.append(value)
    return (f" WHERE {' AND '.join(parts)}" if parts else ""), params


def _alert_row(row: dict[str, Any]) -> dict[str, Any]:
    row["detail"] = orjson.loads(row["detail"])
    return row


def _now_text() -> str:
    text = to_text(datetime.now(UTC))
    assert text is not None
    return text


def config_diff(
    actual: Iterable[Mapping[str, Any]], desired: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Where a GetConfiguration result differs from the desired configuration."""
    values = {str(item.get("key")): item.get("value") for item in actual}
    diff = []
    for key, want in sorted(desired.items()):
        if key not in values:
            diff.append({"key": key, "desired": want, "actual": None, "problem": "missing"})
        elif values[key] != want:
            diff.append({"key": key, "desired": want, "actual": values[key], "problem": "differs"})
    return diff
