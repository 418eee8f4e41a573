"""Billing inside the ledger: the rules that price a finished transaction and settle it.

They run in the same batch (and the same database transaction) as the StopTransaction that
ends the session, so its CDR and postings are durable before the charger hears back, and a
retried stop, which changes nothing in the ledger, bills nothing twice. What they do:

- at a start by a card-on-file driver: ask the provider for a hold (an outbox action, run by
  the payments worker after the commit);
- at authorization of a wallet driver: refuse (Blocked) below the wallet's minimum balance;
- at the end: rate the session with the tariff in force when it started (`rating`), store
  the CDR, and, when the token belongs to a driver, post the sale and settle it by the
  driver's method (`payments`). Sessions of tokens without a driver get a CDR only: there is
  nobody to bill (a roaming partner's CDR export is where they go).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from decimal import Decimal

from csms.domain.cdr import Cdr
from csms.domain.payments import (
    CardOnFile,
    Hold,
    PaymentMethod,
    PrepaidWallet,
    SessionCost,
    Subscribed,
    Succeeded,
    card_preauthorization,
    outcome_from_record,
    session_charge_posting,
    settle_session,
    wallet_authorization,
    wallet_balance,
)
from csms.domain.ports import BillingTx
from csms.domain.postings import driver_wallet
from csms.domain.rating import (
    DEFAULT_IDLE_POWER_W,
    MeterPoint,
    SessionUsage,
    rate_session,
    rate_so_far,
)
from csms.domain.records import DriverRecord, TransactionRecord, TransactionStatus
from csms.domain.replies import AuthorizationStatus
from csms.domain.tariffs import Tariff


@dataclass(frozen=True)
class BillingRules:
    #: Average power (W) below which a car is parked, not charging.
    idle_power_w: int = DEFAULT_IDLE_POWER_W
    #: The stations' local time zone, for time-of-day, day and date restrictions.
    tz: tzinfo = field(default=UTC)
    #: The hold asked for at the start of a card-on-file session, in the driver's currency.
    card_hold_amount: Decimal = Decimal("50")

    # -- authorization -----------------------------------------------------------------

    def authorization(self, tx: BillingTx, id_tag: str) -> AuthorizationStatus | None:
        """Blocked when the token's driver pays by wallet and holds less than the minimum;
        None when billing has nothing against the token."""
        driver = tx.get_driver(id_tag)
        if driver is None or driver.payment_method != "wallet":
            return None
        raw = tx.balance(driver_wallet(driver.id), driver.currency)
        decision = wallet_authorization(wallet_balance(raw), driver.wallet_minimum or Decimal(0))
        return None if decision.allowed else AuthorizationStatus.BLOCKED

    # -- the session -------------------------------------------------------------------

    def on_start(self, tx: BillingTx, transaction_id: int, id_tag: str, at: datetime) -> None:
        driver = tx.get_driver(id_tag)
        if driver is None or driver.payment_method != "card" or not driver.card_ref:
            return
        hold = card_preauthorization(
            str(transaction_id), driver.id, driver.card_ref, self.card_hold_amount, driver.currency
        )
        tx.enqueue_payment_actions([hold], at)

    def on_stop(self, tx: BillingTx, record: TransactionRecord, ended_at: datetime) -> Cdr | None:
        """Rate a transaction that has just ended; None when no tariff applies to it."""
        if record.started_at is None:
            return None
        found = tx.tariff_in_force(record.station_id, record.connector_id, record.started_at)
        if found is None:
            return None
        tariff, version = found
        usage = self.usage(tx, record, ended_at)
        cdr = rate_session(usage, tariff, tz=self.tz, idle_power_w=self.idle_power_w)
        tx.save_cdr(record.id, cdr, tariff, version)
        driver = tx.get_driver(record.id_tag) if record.id_tag else None
        if driver is not None:
            self._settle(tx, record, cdr, tariff, driver)
        return cdr

    def cost_so_far(self, tx: BillingTx, record: TransactionRecord, at: datetime) -> Cdr | None:
        """The running cost of an active session from its readings until `at`; None when it
        is not active or no tariff applies."""
        if record.status is not TransactionStatus.ACTIVE or record.started_at is None:
            return None
        found = tx.tariff_in_force(record.station_id, record.connector_id, record.started_at)
        if found is None:
            return None
        tariff, _ = found
        return rate_so_far(
            self.usage(tx, record, None), tariff, at, tz=self.tz, idle_power_w=self.idle_power_w
        )

    def usage(
        self, tx: BillingTx, record: TransactionRecord, ended_at: datetime | None
    ) -> SessionUsage:
        """What the rater needs of a transaction: its register readings, start to stop."""
        assert record.started_at is not None
        points = [MeterPoint(record.started_at, float(record.meter_start_wh or 0))]
        points += [MeterPoint(at, wh) for at, wh in tx.register_readings(record.id)]
        if ended_at is not None and record.meter_stop_wh is not None:
            points.append(MeterPoint(ended_at, float(record.meter_stop_wh)))
        points.sort(key=lambda p: p.timestamp)
        return SessionUsage(str(record.id), record.started_at, ended_at, points, record.anomalies)

    def _settle(
        self,
        tx: BillingTx,
        record: TransactionRecord,
        cdr: Cdr,
        tariff: Tariff,
        driver: DriverRecord,
    ) -> None:
        incl = cdr.total_cost.incl_vat
        cost = SessionCost(
            session_id=str(record.id),
            driver_id=driver.id,
            currency=cdr.currency,
            amount_excl_vat=cdr.total_cost.excl_vat,
            amount_incl_vat=incl if incl is not None else cdr.total_cost.excl_vat,
            energy_kwh=cdr.total_energy,
            started_at=cdr.start_date_time,
            ended_at=cdr.end_date_time,
            station_id=record.station_id,
        )
        method = self._method(tx, record, driver)
        if method is None:
            # Billed on the period's invoice: the sale stays on the driver's receivable.
            charge = session_charge_posting(cost)
            tx.record_postings([charge] if charge is not None else [])
            return
        settlement = settle_session(cost, method)
        tx.record_postings(settlement.postings)
        tx.enqueue_payment_actions(settlement.actions, cdr.end_date_time)

    def _method(
        self, tx: BillingTx, record: TransactionRecord, driver: DriverRecord
    ) -> PaymentMethod | None:
        if driver.payment_method == "card" and driver.card_ref:
            held = tx.payment_result(f"session:{record.id}:hold")
            outcome = outcome_from_record(held) if held is not None else None
            hold = outcome.result if isinstance(outcome, Succeeded) else None
            return CardOnFile(driver.card_ref, hold if isinstance(hold, Hold) else None)
        if driver.payment_method == "wallet":
            return PrepaidWallet()
        if driver.payment_method == "subscription" and driver.plan_id:
            return Subscribed(driver.plan_id)
        return None
