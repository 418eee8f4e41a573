"""Billing's tables (on SQLite, or PostgreSQL through `csms.storage.dialect`): tariffs and
their assignments, CDRs, drivers, the double-entry journal and the payment outbox.

`SqliteBillingTx` is the billing half of the ledger port (`BillingTx`), mixed into the ledger's
batch transaction; the operator's commands (import a tariff, add a driver, top up a wallet,
issue an invoice) go through `SqliteStore`'s billing methods (`csms.storage.sqlite_billing_admin`).
Amounts are stored as exact decimal text, and legs also as integer minor units so that the
database sums balances exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import orjson

from csms.domain.cdr import Cdr
from csms.domain.money import minor_unit
from csms.domain.payments import PaymentAction, action_to_record
from csms.domain.postings import Leg, Posting, PostingKind, plan_recording
from csms.domain.records import DriverRecord
from csms.domain.tariffs import Tariff, TariffVersion, parse_tariff, tariff_in_force
from csms.storage.dialect import DbConnection
from csms.storage.timestamps import from_text, to_text


@lru_cache(maxsize=256)
def _parsed(body: str) -> Tariff:
    """Stored tariffs were validated on import; parse each stored body once per process."""
    return parse_tariff(body)


def to_minor(amount: Decimal, currency: str) -> int:
    return int(amount.scaleb(minor_unit(currency)))


class SqliteBillingTx:
    """Billing's reads and writes on the connection of the ledger's open batch."""

    _db: DbConnection

    # -- tariffs -----------------------------------------------------------------------

    def tariff_in_force(
        self, station_id: str, connector_id: int, at: datetime
    ) -> tuple[Tariff, int] | None:
        row = self._db.execute(
            """
            SELECT tariff_id FROM tariff_assignments
            WHERE (station_id = ? AND connector_id IN (?, 0)) OR (station_id = '')
            ORDER BY station_id = '', connector_id = 0
            LIMIT 1
            """,
            (station_id, connector_id),
        ).fetchone()
        if row is None:
            return None
        versions = {
            version: TariffVersion(_moment(effective_from), _parsed(body))
            for version, effective_from, body in self._db.execute(
                "SELECT version, effective_from, body FROM tariffs WHERE id = ?", (row[0],)
            )
        }
        tariff = tariff_in_force(versions.values(), at)
        if tariff is None:
            return None
        number = next(n for n, v in versions.items() if v.tariff is tariff)
        return tariff, number

    # -- sessions ----------------------------------------------------------------------

    def register_readings(self, transaction_id: int) -> list[tuple[datetime, float]]:
        rows = self._db.execute(
            """
            SELECT timestamp, wh FROM meter_samples
            WHERE IFNULL(transaction_id, 0) = ? AND measurand = 'Energy.Active.Import.Register'
                AND phase IS NULL AND wh IS NOT NULL
            ORDER BY timestamp, id
            """,
            (transaction_id,),
        ).fetchall()
        return [(_moment(at), float(wh)) for at, wh in rows]

    def save_cdr(self, transaction_id: int, cdr: Cdr, tariff: Tariff, version: int) -> None:
        incl = cdr.total_cost.incl_vat
        self._db.execute(
            """
            INSERT OR IGNORE INTO cdrs (transaction_id, tariff_id, tariff_version, currency,
                cost_excl_vat, cost_incl_vat, flags, body, created_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            (
                transaction_id,
                tariff.id,
                version,
                cdr.currency,
                str(cdr.total_cost.excl_vat),
                str(incl if incl is not None else cdr.total_cost.excl_vat),
                ",".join(cdr.flags) or None,
                orjson.dumps(cdr.to_ocpi(tariff)).decode(),
                to_text(cdr.end_date_time),
            ),
        )

    # -- drivers and money -------------------------------------------------------------

    def get_driver(self, id_tag: str) -> DriverRecord | None:
        row = self._db.execute(
            """
            SELECT d.id, d.currency, d.payment_method, d.card_ref, d.plan_id, d.wallet_minimum
            FROM id_tokens t JOIN drivers d ON d.id = t.driver_id WHERE t.id_tag = ?
            """,
            (id_tag,),
        ).fetchone()
        return driver_record(row)

    def balance(self, account: str, currency: str) -> Decimal:
        (minor,) = self._db.execute(
            "SELECT IFNULL(SUM(minor), 0) FROM posting_legs WHERE account = ? AND currency = ?",
            (account, currency),
        ).fetchone()
        return Decimal(int(minor)).scaleb(-minor_unit(currency))

    def get_posting(self, key: str) -> Posting | None:
        row = self._db.execute(
            "SELECT seq, key, at, kind, memo, reverses FROM postings WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return None
        legs = tuple(
            Leg(account, Decimal(amount), currency)
            for account, currency, amount in self._db.execute(
                "SELECT account, currency, amount FROM posting_legs WHERE posting_seq = ?"
                " ORDER BY leg",
                (row[0],),
            )
        )
        return Posting(row[1], _moment(row[2]), PostingKind(row[3]), row[4], legs, row[5])

    def record_postings(self, postings: Sequence[Posting]) -> None:
        _, new = plan_recording(postings, self.get_posting)
        for posting in new:
            ((seq,),) = self._db.execute(
                "INSERT INTO postings (key, at, kind, memo, reverses) VALUES (?, ?, ?, ?, ?)"
                " RETURNING seq",
                (
                    posting.key,
                    to_text(posting.at),
                    posting.kind.value,
                    posting.memo,
                    posting.reverses,
                ),
            ).fetchall()
            self._db.executemany(
                "INSERT INTO posting_legs (posting_seq, leg, account, currency, amount, minor)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        seq,
                        n,
                        leg.account,
                        leg.currency,
                        str(leg.amount),
                        to_minor(leg.amount, leg.currency),
                    )
                    for n, leg in enumerate(posting.legs)
                ],
            )

    # -- the payment outbox ------------------------------------------------------------

    def enqueue_payment_actions(self, actions: Sequence[PaymentAction], at: datetime) -> None:
        moment = to_text(at)
        self._db.executemany(
            """
            INSERT OR IGNORE INTO payment_actions (key, record, status, attempts,
                next_attempt_at, created_at, updated_at)
            VALUES (?, ?, 'pending', 0, ?, ?, ?)
            """,
            [
                (
                    a.idempotency_key,
                    orjson.dumps(action_to_record(a)).decode(),
                    moment,
                    moment,
                    moment,
                )
                for a in actions
            ],
        )

    def payment_result(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT outcome FROM payment_outcomes WHERE key = ? ORDER BY attempt DESC LIMIT 1",
            (key,),
        ).fetchone()
        if row is None:
            return None
        outcome: dict[str, Any] = orjson.loads(row[0])
        return outcome


def driver_record(row: Sequence[Any] | None) -> DriverRecord | None:
    if row is None:
        return None
    return DriverRecord(
        id=row[0],
        currency=row[1],
        payment_method=row[2],
        card_ref=row[3],
        plan_id=row[4],
        wallet_minimum=Decimal(row[5]) if row[5] is not None else None,
    )


def _moment(text: str) -> datetime:
    moment = from_text(text)
    assert moment is not None
    return moment
