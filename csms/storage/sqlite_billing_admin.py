"""The operator's billing commands on the ledger database (SQLite or PostgreSQL): tariffs,
drivers, wallets, plans, CDRs, the payment outbox as the payments worker sees it, and invoices.

`BillingAdmin` is mixed into `SqliteStore`; each write is one `BEGIN IMMEDIATE` transaction,
so it waits for the server's batch rather than failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from csms.domain.billing import BillingRules
from csms.domain.payments import (
    ActionOutcome,
    ActionStatus,
    FollowUp,
    PaymentAction,
    SessionCost,
    SubscriptionPlan,
    action_from_record,
    outcome_to_record,
)
from csms.domain.postings import Posting, driver_receivable, driver_wallet
from csms.domain.records import DriverRecord
from csms.domain.tariffs import Tariff
from csms.storage.base import StoreError
from csms.storage.dialect import DbConnection
from csms.storage.sqlite_billing import driver_record
from csms.storage.sqlite_ledger import SqliteLedgerTx
from csms.storage.timestamps import from_text, to_text

PAYMENT_METHODS = ("card", "wallet", "subscription", "invoice")


class _Write:
    def __init__(self, db: DbConnection) -> None:
        self._db = db

    def __enter__(self) -> SqliteLedgerTx:
        self._db.execute("BEGIN IMMEDIATE")
        return SqliteLedgerTx(self._db)

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")


class BillingAdmin:
    _db: DbConnection

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor = self._db.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    # -- tariffs -----------------------------------------------------------------------

    def add_tariff(
        self,
        tariff: Tariff,
        effective_from: datetime,
        now: datetime,
        *,
        station_id: str | None = None,
        connector_id: int = 0,
        default: bool = False,
    ) -> int:
        """Store a new version of `tariff` (validated by `parse_tariff`) and, if asked,
        assign it; the version number."""
        body = orjson.dumps(tariff.to_ocpi()).decode()
        with _Write(self._db):
            (latest,) = self._db.execute(
                "SELECT IFNULL(MAX(version), 0) FROM tariffs WHERE id = ?", (tariff.id,)
            ).fetchone()
            version = int(latest) + 1
            self._db.execute(
                "INSERT INTO tariffs (id, version, effective_from, currency, body, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (tariff.id, version, to_text(effective_from), tariff.currency, body, to_text(now)),
            )
            if default or station_id is not None:
                self._db.execute(
                    "INSERT INTO tariff_assignments"
                    " (station_id, connector_id, tariff_id, assigned_at) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (station_id, connector_id) DO UPDATE SET"
                    " tariff_id = excluded.tariff_id, assigned_at = excluded.assigned_at",
                    (
                        "" if default else station_id,
                        0 if default else connector_id,
                        tariff.id,
                        to_text(now),
                    ),
                )
        return version

    def list_tariffs(self) -> list[dict[str, Any]]:
        return self._rows(
            """
            SELECT t.id, t.version, t.currency, t.effective_from,
                (SELECT GROUP_CONCAT(CASE WHEN a.station_id = '' THEN 'default'
                    WHEN a.connector_id = 0 THEN a.station_id
                    ELSE a.station_id || '/' || a.connector_id END, ' ')
                 FROM tariff_assignments a WHERE a.tariff_id = t.id) AS assigned_to
            FROM tariffs t
            WHERE t.version = (SELECT MAX(version) FROM tariffs WHERE id = t.id)
            ORDER BY t.id
            """
        )

    def get_tariff(self, tariff_id: str) -> dict[str, Any] | None:
        versions = self._rows(
            "SELECT version, effective_from, created_at, body FROM tariffs WHERE id = ?"
            " ORDER BY version",
            (tariff_id,),
        )
        if not versions:
            return None
        for version in versions:
            version["tariff"] = orjson.loads(version.pop("body"))
        assignments = self._rows(
            "SELECT station_id, connector_id, assigned_at FROM tariff_assignments"
            " WHERE tariff_id = ? ORDER BY station_id, connector_id",
            (tariff_id,),
        )
        return {"id": tariff_id, "versions": versions, "assignments": assignments}

    # -- drivers, tokens, wallets, plans -------------------------------------------------

    def add_driver(
        self,
        driver: DriverRecord,
        now: datetime,
        *,
        name: str | None = None,
        email: str | None = None,
    ) -> None:
        if driver.payment_method not in PAYMENT_METHODS:
            raise StoreError(f"payment method must be one of {', '.join(PAYMENT_METHODS)}")
        if driver.payment_method == "card" and not driver.card_ref:
            raise StoreError("a card-on-file driver needs a card reference")
        with _Write(self._db):
            if (
                driver.plan_id is not None
                and self._db.execute(
                    "SELECT 1 FROM subscription_plans WHERE id = ?", (driver.plan_id,)
                ).fetchone()
                is None
            ):
                raise StoreError(f"no subscription plan {driver.plan_id!r}")
            self._db.execute(
                """
                INSERT INTO drivers (id, name, email, currency, payment_method, card_ref, plan_id,
                    wallet_minimum, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO UPDATE SET name = excluded.name, email = excluded.email,
                    currency = excluded.currency, payment_method = excluded.payment_method,
                    card_ref = excluded.card_ref, plan_id = excluded.plan_id,
                    wallet_minimum = excluded.wallet_minimum
                """,
                (
                    driver.id,
                    name,
                    email,
                    driver.currency,
                    driver.payment_method,
                    driver.card_ref,
                    driver.plan_id,
                    str(driver.wallet_minimum) if driver.wallet_minimum is not None else None,
                    to_text(now),
                ),
            )

    def get_driver_record(self, driver_id: str) -> DriverRecord | None:
        return driver_record(
            self._db.execute(
                "SELECT id, currency, payment_method, card_ref, plan_id, wallet_minimum"
                " FROM drivers WHERE id = ?",
                (driver_id,),
            ).fetchone()
        )

    def list_drivers(self) -> list[dict[str, Any]]:
        drivers = self._rows(
            "SELECT id, name, email, currency, payment_method, card_ref, plan_id, wallet_minimum,"
            " (SELECT COUNT(*) FROM id_tokens t WHERE t.driver_id = d.id) AS tokens"
            " FROM drivers d ORDER BY id"
        )
        tx = SqliteLedgerTx(self._db)
        for driver in drivers:
            currency = driver["currency"]
            driver["wallet_balance"] = str(-tx.balance(driver_wallet(driver["id"]), currency))
            driver["amount_due"] = str(tx.balance(driver_receivable(driver["id"]), currency))
        return drivers

    def assign_token(self, id_tag: str, driver_id: str | None) -> None:
        with _Write(self._db):
            if (
                driver_id is not None
                and self._db.execute("SELECT 1 FROM drivers WHERE id = ?", (driver_id,)).fetchone()
                is None
            ):
                raise StoreError(f"no driver {driver_id!r}")
            changed = self._db.execute(
                "UPDATE id_tokens SET driver_id = ? WHERE id_tag = ?", (driver_id, id_tag)
            ).rowcount
            if not changed:
                raise StoreError(f"no token {id_tag!r}")

    def add_plan(self, plan: SubscriptionPlan, now: datetime) -> None:
        body = {
            "currency": plan.currency,
            "monthly_fee": str(plan.monthly_fee),
            "included_kwh": str(plan.included_kwh),
            "overage_rate": str(plan.overage_rate),
            "vat_rate": str(plan.vat_rate),
            "timezone": plan.timezone,
        }
        with _Write(self._db):
            self._db.execute(
                "INSERT INTO subscription_plans (id, body, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET body = excluded.body,"
                " created_at = excluded.created_at",
                (plan.plan_id, orjson.dumps(body).decode(), to_text(now)),
            )

    def get_plan(self, plan_id: str) -> SubscriptionPlan | None:
        row = self._db.execute(
            "SELECT body FROM subscription_plans WHERE id = ?", (plan_id,)
        ).fetchone()
        if row is None:
            return None
        body = orjson.loads(row[0])
        return SubscriptionPlan(
            plan_id,
            body["currency"],
            Decimal(body["monthly_fee"]),
            Decimal(body["included_kwh"]),
            Decimal(body["overage_rate"]),
            Decimal(body["vat_rate"]),
            body["timezone"],
        )

    def record_postings(self, postings: Iterable[Posting]) -> None:
        """Record operator postings (top-ups, refunds' credit notes, period bills)."""
        with _Write(self._db) as tx:
            tx.record_postings(list(postings))

    def get_posting(self, key: str) -> Posting | None:
        return SqliteLedgerTx(self._db).get_posting(key)

    def postings_of(self, driver_id: str) -> list[Posting]:
        """Every posting with a leg on one of the driver's accounts, in recording order."""
        tx = SqliteLedgerTx(self._db)
        keys = [
            key
            for (key,) in self._db.execute(
                "SELECT p.key FROM postings p WHERE p.seq IN (SELECT l.posting_seq"
                " FROM posting_legs l WHERE l.account IN (?, ?)) ORDER BY p.seq",
                (driver_wallet(driver_id), driver_receivable(driver_id)),
            )
        ]
        return [p for p in (tx.get_posting(k) for k in keys) if p is not None]

    def account_balances(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT account, currency, SUM(minor) AS minor FROM posting_legs"
            " GROUP BY account, currency ORDER BY account, currency"
        )
        tx = SqliteLedgerTx(self._db)
        return [
            {
                "account": r["account"],
                "currency": r["currency"],
                "balance": str(tx.balance(r["account"], r["currency"])),
            }
            for r in rows
        ]

    # -- CDRs and costs ----------------------------------------------------------------

    def get_cdr(self, transaction_id: int) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT body FROM cdrs WHERE transaction_id = ?", (transaction_id,)
        ).fetchone()
        return None if row is None else dict(orjson.loads(row[0]))

    def session_costs(self, driver_id: str, start: datetime, end: datetime) -> list[SessionCost]:
        """The priced sessions of the driver's tokens that ended in [start, end)."""
        return self._session_costs(
            "t.driver_id = ? AND x.ended_at >= ? AND x.ended_at < ?",
            (driver_id, to_text(start), to_text(end)),
        )

    def session_cost(self, transaction_id: int) -> SessionCost | None:
        """The priced session, if it is priced and its token belongs to a driver."""
        costs = self._session_costs("x.id = ?", (transaction_id,))
        return costs[0] if costs else None

    def driver_of_tag(self, id_tag: str) -> DriverRecord | None:
        return SqliteLedgerTx(self._db).get_driver(id_tag)

    def _session_costs(self, where: str, params: Sequence[Any]) -> list[SessionCost]:
        rows = self._db.execute(
            f"""
            SELECT c.transaction_id, t.driver_id, c.currency, c.cost_excl_vat, c.cost_incl_vat,
                c.body, x.started_at, x.ended_at, x.station_id
            FROM cdrs c JOIN transactions x ON x.id = c.transaction_id
                JOIN id_tokens t ON t.id_tag = x.id_tag
            WHERE t.driver_id IS NOT NULL AND {where}
            ORDER BY x.ended_at, x.id
            """,
            params,
        ).fetchall()
        costs = []
        for tid, driver_id, currency, excl, incl, body, started, ended, station in rows:
            started_at, ended_at = from_text(started), from_text(ended)
            assert started_at is not None and ended_at is not None
            costs.append(
                SessionCost(
                    session_id=str(tid),
                    driver_id=driver_id,
                    currency=currency,
                    amount_excl_vat=Decimal(excl),
                    amount_incl_vat=Decimal(incl),
                    energy_kwh=Decimal(str(orjson.loads(body)["total_energy"])),
                    started_at=started_at,
                    ended_at=ended_at,
                    station_id=station,
                )
            )
        return costs

    # -- the payment outbox ------------------------------------------------------------

    def due_payment_actions(
        self, now: datetime, limit: int = 50
    ) -> list[tuple[PaymentAction, int]]:
        rows = self._db.execute(
            "SELECT record, attempts FROM payment_actions WHERE status = 'pending'"
            " AND next_attempt_at <= ? ORDER BY next_attempt_at, key LIMIT ?",
            (to_text(now), limit),
        ).fetchall()
        return [(action_from_record(orjson.loads(record)), attempts) for record, attempts in rows]

    def record_payment_outcome(
        self,
        action: PaymentAction,
        attempt: int,
        outcome: ActionOutcome,
        follow_up: FollowUp,
        now: datetime,
        retry_at: datetime,
    ) -> None:
        """The outcome, its postings, the next actions and the action's new status: one
        transaction, so a crash between the provider call and here only repeats the call
        (with the same idempotency key)."""
        key = action.idempotency_key
        status = {
            ActionStatus.DONE: "done",
            ActionStatus.RETRY: "pending",
            ActionStatus.STUCK: "stuck",
        }[follow_up.status]
        with _Write(self._db) as tx:
            self._db.execute(
                "INSERT INTO payment_outcomes (key, attempt, outcome, recorded_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (key, attempt) DO UPDATE SET"
                " outcome = excluded.outcome, recorded_at = excluded.recorded_at",
                (key, attempt, orjson.dumps(outcome_to_record(outcome)).decode(), to_text(now)),
            )
            tx.record_postings(follow_up.postings)
            tx.enqueue_payment_actions(follow_up.actions, now)
            self._db.execute(
                "UPDATE payment_actions SET status = ?, attempts = ?, next_attempt_at = ?,"
                " updated_at = ? WHERE key = ?",
                (status, attempt, to_text(retry_at), to_text(now), key),
            )

    def payment_actions(self) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT key, status, attempts, next_attempt_at, updated_at FROM payment_actions"
            " ORDER BY created_at, key"
        )

    # -- invoices ----------------------------------------------------------------------

    def save_invoice(
        self,
        number: str,
        driver_id: str,
        period: str,
        body: dict[str, Any],
        csv_text: str,
        issued_at: datetime,
    ) -> None:
        with _Write(self._db):
            self._db.execute(
                "INSERT INTO invoices (number, driver_id, period, body, csv, issued_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (number) DO UPDATE SET"
                " driver_id = excluded.driver_id, period = excluded.period,"
                " body = excluded.body, csv = excluded.csv, issued_at = excluded.issued_at",
                (
                    number,
                    driver_id,
                    period,
                    orjson.dumps(body).decode(),
                    csv_text,
                    to_text(issued_at),
                ),
            )

    def list_invoices(self, period: str | None = None) -> list[dict[str, Any]]:
        where, params = ("WHERE period = ?", (period,)) if period else ("", ())
        rows = self._rows(
            f"SELECT number, driver_id, period, issued_at, body FROM invoices {where}"
            " ORDER BY period, number",
            params,
        )
        for row in rows:
            body = orjson.loads(row.pop("body"))
            row["total_incl_vat"] = body.get("totals", {}).get("amount_incl_vat")
            row["amount_due"] = body.get("amount_due")
        return rows

    def get_invoice(self, number: str) -> tuple[dict[str, Any], str] | None:
        """The invoice as JSON and as CSV."""
        row = self._db.execute(
            "SELECT body, csv FROM invoices WHERE number = ?", (number,)
        ).fetchone()
        return None if row is None else (dict(orjson.loads(row[0])), str(row[1]))


def live_cost(
    store: BillingAdmin, transaction_id: int, now: datetime, rules: BillingRules
) -> dict[str, Any] | None:
    """The running cost of an active session from the readings so far (None when it is not
    active or no tariff applies): what the API and the dashboard show as it charges."""
    tx = SqliteLedgerTx(store._db)
    record = tx.get_transaction(transaction_id)
    cdr = None if record is None else rules.cost_so_far(tx, record, now)
    if cdr is None:
        return None
    incl = cdr.total_cost.incl_vat
    return {
        "currency": cdr.currency,
        "cost_excl_vat": str(cdr.total_cost.excl_vat),
        "cost_incl_vat": str(incl if incl is not None else cdr.total_cost.excl_vat),
        "energy_kwh": str(cdr.total_energy),
        "as_of": to_text(now),
    }
