"""Billing inside the ledger on a real SQLite file: CDRs at the stop, postings per payment
method, wallet authorization, tariff versions and assignments, no double charge on retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from ledger_harness import (
    ACCEPT_ALL,
    DEVICE_T0,
    apply,
    at,
    authorize_request,
    count,
    meter,
    register,
    rows,
    start,
    stop,
)

from csms.domain.billing import BillingRules
from csms.domain.payments import topup_posting
from csms.domain.records import DriverRecord
from csms.domain.replies import AuthorizationStatus, AuthorizeDecision, StartDecision
from csms.domain.tariffs import parse_tariff
from csms.storage.base import StoreError
from csms.storage.sqlite import SqliteStore, TokenRow
from csms.storage.sqlite_billing_admin import live_cost

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def tariff(tariff_id: str = "T1", energy: float = 0.30, **extra: Any) -> Any:
    return parse_tariff(
        {
            "country_code": "DE",
            "party_id": "CSM",
            "id": tariff_id,
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [
                        {"type": "ENERGY", "price": energy, "vat": 19.0, "step_size": 1},
                        {"type": "FLAT", "price": 1.00, "vat": 19.0, "step_size": 1},
                        {"type": "PARKING_TIME", "price": 6.00, "vat": 19.0, "step_size": 60},
                    ]
                }
            ],
            "last_updated": "2026-01-01T00:00:00Z",
            "parking_grace_period_s": 1800,
            **extra,
        }
    )


def charge_session(store: SqliteStore, id_tag: str = "TAG", *, idle_minutes: float = 30) -> int:
    """08:00 start at 1,000 Wh, 11 kWh by 08:30, then parked until the stop."""
    reply = apply(store, ACCEPT_ALL, start(id_tag))
    assert isinstance(reply, StartDecision)
    tid = reply.transaction_id
    apply(store, ACCEPT_ALL, meter(tid, register(12_000, at(30))))
    apply(
        store,
        ACCEPT_ALL,
        stop(tid, meter_stop=12_000, timestamp=at(30 + idle_minutes), id_tag=id_tag),
    )
    return tid


def test_a_stopped_session_gets_a_cdr_and_its_cost_in_the_session_list(
    store: SqliteStore, path: str
) -> None:
    store.add_tariff(tariff(), NOW, NOW, default=True)
    store.upsert_token("TAG", "Accepted")
    tid = charge_session(store)
    # 11 kWh x 0.30 = 3.30 and a 1.00 fee; 30 min parked are within the grace period.
    (session,) = store.list_sessions()
    assert (session["cost_excl_vat"], session["currency"]) == ("4.30", "EUR")
    # VAT per component, each rounded half up: 3.927 -> 3.93, 1.19.
    assert session["cost_incl_vat"] == "5.12"
    cdr = store.get_cdr(tid)
    assert cdr is not None
    assert cdr["total_energy"] == 11
    assert cdr["tariffs"][0]["id"] == "T1"
    # Nobody to bill: the token has no driver, so no postings.
    assert count(path, "postings") == 0


def test_parking_beyond_the_grace_period_is_billed(store: SqliteStore) -> None:
    store.add_tariff(tariff(), NOW, NOW, default=True)
    store.upsert_token("TAG", "Accepted")
    tid = charge_session(store, idle_minutes=90)
    cdr = store.get_cdr(tid)
    assert cdr is not None
    # 90 min parked, 30 free: one hour at 6.00.
    assert cdr["total_parking_cost"]["excl_vat"] == 6
    assert cdr["total_cost"]["excl_vat"] == pytest.approx(10.30)


def test_no_tariff_no_cdr(store: SqliteStore) -> None:
    store.upsert_token("TAG", "Accepted")
    tid = charge_session(store)
    assert store.get_cdr(tid) is None
    assert store.list_sessions()[0]["cost_excl_vat"] is None


def test_the_connector_tariff_beats_the_station_one_which_beats_the_default(
    store: SqliteStore,
) -> None:
    store.add_stations([("CP1", 0)])
    store.upsert_token("TAG", "Accepted")
    store.add_tariff(tariff("DEFAULT", 0.10), NOW, NOW, default=True)
    store.add_tariff(tariff("STATION", 0.20), NOW, NOW, station_id="CP1")
    store.add_tariff(tariff("PLUG2", 0.50), NOW, NOW, station_id="CP1", connector_id=2)
    tid = charge_session(store)
    cdr = store.get_cdr(tid)
    assert cdr is not None and cdr["tariffs"][0]["id"] == "STATION"


def test_a_session_is_rated_with_the_version_in_force_when_it_started(
    store: SqliteStore,
) -> None:
    store.upsert_token("TAG", "Accepted")
    store.add_tariff(tariff(energy=0.30), NOW, NOW, default=True)
    # A price rise effective from 08:10, after the session started at 08:00.
    store.add_tariff(tariff(energy=0.90), DEVICE_T0 + timedelta(minutes=10), NOW)
    tid = charge_session(store)
    assert store.list_sessions()[0]["cost_excl_vat"] == "4.30"
    cdr = store.get_cdr(tid)
    assert (
        cdr is not None and cdr["tariffs"][0]["elements"][0]["price_components"][0]["price"] == 0.3
    )
    assert [v["version"] for v in store.get_tariff("T1")["versions"]] == [1, 2]  # type: ignore[index]


def test_invoice_driver_sale_is_posted_once_even_when_the_stop_is_retried(
    store: SqliteStore, path: str
) -> None:
    store.add_tariff(tariff(), NOW, NOW, default=True)
    store.upsert_token("TAG", "Accepted")
    store.add_driver(DriverRecord("D1", "EUR", "invoice"), NOW)
    store.assign_token("TAG", "D1")
    tid = charge_session(store)
    apply(store, ACCEPT_ALL, stop(tid, meter_stop=12_000, timestamp=at(60)))  # the retry
    assert count(path, "postings") == 1
    assert count(path, "cdrs") == 1
    (driver,) = store.list_drivers()
    assert driver["amount_due"] == "5.12"
    balances = {b["account"]: Decimal(b["balance"]) for b in store.account_balances()}
    assert sum(balances.values()) == 0  # double entry
    assert balances["revenue:charging"] == Decimal("-4.30")
    assert balances["tax:vat"] == Decimal("-0.82")


def test_wallet_drivers_are_refused_below_the_minimum_and_pay_at_the_end(
    store: SqliteStore,
) -> None:
    store.add_tariff(tariff(), NOW, NOW, default=True)
    store.upsert_token("TAG", "Accepted")
    store.add_driver(DriverRecord("W1", "EUR", "wallet", wallet_minimum=Decimal("5")), NOW)
    store.assign_token("TAG", "W1")
    reply = apply(store, ACCEPT_ALL, authorize_request("TAG"))
    assert isinstance(reply, AuthorizeDecision)
    assert reply.id_tag_info.status is AuthorizationStatus.BLOCKED
    store.record_postings([topup_posting("topup:W1:1", "W1", Decimal("20"), "EUR", NOW)])
    reply = apply(store, ACCEPT_ALL, authorize_request("TAG"))
    assert isinstance(reply, AuthorizeDecision)
    assert reply.id_tag_info.status is AuthorizationStatus.ACCEPTED
    charge_session(store)
    (driver,) = store.list_drivers()
    assert driver["wallet_balance"] == "14.88"  # 20.00 - 5.12
    assert driver["amount_due"] == "0.00"


def test_card_drivers_get_a_hold_at_the_start_and_a_capture_at_the_end(
    store: SqliteStore,
) -> None:
    store.add_tariff(tariff(), NOW, NOW, default=True)
    store.upsert_token("TAG", "Accepted")
    store.add_driver(DriverRecord("C1", "EUR", "card", card_ref="sim_card_ok"), NOW)
    store.assign_token("TAG", "C1")
    tid = charge_session(store)
    keys = [a["key"] for a in store.payment_actions()]
    assert keys[0] == f"session:{tid}:hold"
    # No hold outcome was recorded (no worker ran): the sale is collected by a new hold,
    # captured when granted.
    assert f"session:{tid}:extra:hold" in keys
    (driver,) = store.list_drivers()
    assert driver["amount_due"] == "5.12"


def test_live_cost_of_a_running_session(store: SqliteStore) -> None:
    store.add_tariff(tariff(), NOW, NOW, default=True)
    store.upsert_token("TAG", "Accepted")
    reply = apply(store, ACCEPT_ALL, start("TAG"))
    assert isinstance(reply, StartDecision)
    apply(store, ACCEPT_ALL, meter(reply.transaction_id, register(6_000, at(15))))
    cost = live_cost(store, reply.transaction_id, at(15), BillingRules())
    assert cost is not None
    # 5 kWh x 0.30 + 1.00
    assert cost["cost_excl_vat"] == "2.50"
    assert Decimal(cost["energy_kwh"]) == 5


def test_token_and_driver_mistakes_are_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="no driver"):
        store.upsert_tokens([TokenRow("TAG")])
        store.assign_token("TAG", "NOBODY")
    store.add_driver(DriverRecord("D1", "EUR", "invoice"), NOW)
    with pytest.raises(StoreError, match="no token"):
        store.assign_token("MISSING", "D1")
    with pytest.raises(StoreError, match="card reference"):
        store.add_driver(DriverRecord("C1", "EUR", "card"), NOW)
    with pytest.raises(StoreError, match="no subscription plan"):
        store.add_driver(DriverRecord("S1", "EUR", "subscription", plan_id="GOLD"), NOW)
    assert rows(store.path, "SELECT id FROM drivers") == [{"id": "D1"}]


def test_anomalous_meter_data_is_rated_on_its_valid_part_and_flagged(store: SqliteStore) -> None:
    store.add_tariff(tariff(), NOW, NOW, default=True)
    store.upsert_token("TAG", "Accepted")
    reply = apply(store, ACCEPT_ALL, start("TAG"))
    assert isinstance(reply, StartDecision)
    tid = reply.transaction_id
    # 4 kWh, then the register runs backwards by 2 kWh, then 3 kWh more.
    apply(store, ACCEPT_ALL, meter(tid, register(5_000, at(10))))
    apply(store, ACCEPT_ALL, meter(tid, register(3_000, at(20))))
    apply(store, ACCEPT_ALL, stop(tid, meter_stop=6_000, timestamp=at(30)))
    cdr = store.get_cdr(tid)
    assert cdr is not None
    assert cdr["total_energy"] == 7  # the fall is not billed, the rises are
    assert "register_backwards" in cdr["remark"]
    (session,) = store.list_sessions()
    assert Decimal(session["cost_excl_vat"]) == Decimal("3.10")  # 7 x 0.30 + 1.00
