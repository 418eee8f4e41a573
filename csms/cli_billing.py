"""The operator's billing commands: `csms tariffs|drivers|plans|invoices ...`.

Tariffs are OCPI 2.2.1 Tariff objects, validated before anything is stored; every import is a
new version with its effective-from time. Drivers own tokens and pay by card on file, prepaid
wallet, subscription plan or on the period's invoice. Invoices are issued per driver per month
and kept as JSON and CSV.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer

from csms.cli_common import (
    CliError,
    FormatOption,
    OutputFormat,
    open_cli_store,
    parse_date,
    print_rows,
)
from csms.domain.invoices import build_invoice, build_receipt, document_to_csv, document_to_json
from csms.domain.payments import BillingPeriod, SubscriptionPlan, bill_subscription, topup_posting
from csms.domain.records import DriverRecord
from csms.domain.tariffs import TariffError, parse_tariff
from csms.storage.sqlite import SqliteStore

tariffs_app = typer.Typer(help="Tariffs (OCPI 2.2.1), versioned.", no_args_is_help=True)
drivers_app = typer.Typer(help="Drivers, their tokens and how they pay.", no_args_is_help=True)
plans_app = typer.Typer(help="Subscription plans.", no_args_is_help=True)
invoices_app = typer.Typer(
    help="Invoices per driver per month, and receipts.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(tariffs_app, name="tariffs")
    app.add_typer(drivers_app, name="drivers")
    app.add_typer(plans_app, name="plans")
    app.add_typer(invoices_app, name="invoices")


def _now() -> datetime:
    return datetime.now(UTC)


def _amount(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CliError(f"{what} must be a decimal number, not {text!r}") from None
    if not value.is_finite():
        raise CliError(f"{what} must be a finite number")
    return value


# -- tariffs ---------------------------------------------------------------------------------


@tariffs_app.command("add")
def tariffs_add(
    file: Annotated[Path, typer.Argument(metavar="FILE.json")],
    default: Annotated[
        bool, typer.Option("--default", help="Applies wherever none else does.")
    ] = False,
    station: Annotated[str | None, typer.Option(help="Applies to this station.")] = None,
    connector: Annotated[
        int | None, typer.Option(min=1, help="Only this connector of --station.")
    ] = None,
    effective_from: Annotated[
        str | None, typer.Option(help="ISO 8601; sessions starting from then use it. Now if unset.")
    ] = None,
) -> None:
    """Import an OCPI 2.2.1 Tariff object as a new version of its id."""
    if default and station is not None:
        raise CliError("--default and --station exclude each other")
    if connector is not None and station is None:
        raise CliError("--connector needs --station")
    try:
        text = file.read_bytes()
    except OSError as exc:
        raise CliError(f"{file}: cannot read: {exc.strerror or exc}") from None
    try:
        tariff = parse_tariff(text)
    except TariffError as exc:
        raise CliError(f"{file}: {exc}") from None
    now = _now()
    start = parse_date(effective_from, "--effective-from") or now
    with open_cli_store() as store:
        if station is not None and store.get_station(station) is None:
            raise CliError(f"no station {station!r}")
        version = store.add_tariff(
            tariff, start, now, station_id=station, connector_id=connector or 0, default=default
        )
    where = (
        "default" if default else station and f"{station}" + (f"/{connector}" if connector else "")
    )
    typer.echo(
        f"tariff {tariff.id} version {version} saved, effective from {start.isoformat()}"
        + (f", assigned to {where}" if where else "")
    )


@tariffs_app.command("list")
def tariffs_list(fmt: FormatOption = OutputFormat.table) -> None:
    """List tariffs (their latest version) and where they apply."""
    with open_cli_store() as store:
        print_rows(
            store.list_tariffs(),
            fmt,
            ["id", "version", "currency", "effective_from", "assigned_to"],
        )


@tariffs_app.command("show")
def tariffs_show(
    tariff_id: Annotated[str, typer.Argument(metavar="ID")], fmt: FormatOption = OutputFormat.json
) -> None:
    """Show a tariff: every version (OCPI JSON) and its assignments."""
    with open_cli_store() as store:
        tariff = store.get_tariff(tariff_id)
    if tariff is None:
        raise CliError(f"no tariff {tariff_id!r}")
    if fmt is OutputFormat.json:
        print_rows(tariff, fmt, [])
        return
    rows = [
        {
            "version": v["version"],
            "effective_from": v["effective_from"],
            "elements": len(v["tariff"].get("elements", [])),
        }
        for v in tariff["versions"]
    ]
    print_rows(rows, fmt, ["version", "effective_from", "elements"])


# -- drivers and plans ---------------------------------------------------------------------


class PaymentMethodName(StrEnum):
    card = "card"
    wallet = "wallet"
    subscription = "subscription"
    invoice = "invoice"


@drivers_app.command("add")
def drivers_add(
    driver_id: Annotated[str, typer.Argument(metavar="ID")],
    payment: Annotated[PaymentMethodName, typer.Option(help="How the driver pays.")],
    currency: Annotated[str, typer.Option(help="ISO 4217 code.")] = "EUR",
    card_ref: Annotated[
        str | None, typer.Option(help="Card on file: the provider's reference.")
    ] = None,
    plan: Annotated[str | None, typer.Option(help="Subscription: the plan id.")] = None,
    wallet_minimum: Annotated[
        str | None, typer.Option(help="Wallet: the balance a session needs to start.")
    ] = None,
    name: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Add or update a driver."""
    if payment is PaymentMethodName.subscription and plan is None:
        raise CliError("a subscription driver needs --plan")
    minimum = _amount(wallet_minimum, "--wallet-minimum") if wallet_minimum else None
    try:
        record = DriverRecord(driver_id, currency.upper(), payment.value, card_ref, plan, minimum)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    with open_cli_store() as store:
        store.add_driver(record, _now(), name=name, email=email)
    typer.echo(f"driver {driver_id} saved ({payment.value})")


@drivers_app.command("list")
def drivers_list(fmt: FormatOption = OutputFormat.table) -> None:
    """List drivers with their wallet balance and the amount they owe."""
    with open_cli_store() as store:
        print_rows(
            store.list_drivers(),
            fmt,
            ["id", "name", "payment_method", "currency", "tokens", "wallet_balance", "amount_due"],
        )


@drivers_app.command("assign")
def drivers_assign(
    driver_id: Annotated[str, typer.Argument(metavar="DRIVER")],
    id_tag: Annotated[str, typer.Argument(metavar="TAG")],
) -> None:
    """Give a token to a driver: its sessions are billed to them."""
    with open_cli_store() as store:
        store.assign_token(id_tag, driver_id)
    typer.echo(f"token {id_tag} belongs to {driver_id}")


@drivers_app.command("topup")
def drivers_topup(
    driver_id: Annotated[str, typer.Argument(metavar="DRIVER")],
    amount: Annotated[str, typer.Argument(metavar="AMOUNT")],
    key: Annotated[
        str | None, typer.Option(help="The payment's reference: the same key never credits twice.")
    ] = None,
) -> None:
    """Credit a driver's prepaid wallet."""
    value = _amount(amount, "AMOUNT")
    reference = f"topup:{driver_id}:{key or uuid.uuid4().hex}"
    with open_cli_store() as store:
        driver = store.get_driver_record(driver_id)
        if driver is None:
            raise CliError(f"no driver {driver_id!r}")
        try:
            posting = topup_posting(reference, driver_id, value, driver.currency, _now())
        except ValueError as exc:
            raise CliError(str(exc)) from None
        earlier = store.get_posting(reference)
        if earlier is not None:
            # A retried command: the same payment is credited once, at its first time.
            if sorted(earlier.legs, key=str) != sorted(posting.legs, key=str):
                raise CliError(f"top-up {key!r} was already recorded with another amount")
            typer.echo(f"top-up {key} was already recorded; nothing changed")
            return
        store.record_postings([posting])
    typer.echo(f"wallet of {driver_id} credited {value} {driver.currency}")


@plans_app.command("add")
def plans_add(
    plan_id: Annotated[str, typer.Argument(metavar="ID")],
    monthly_fee: Annotated[str, typer.Option(help="Per month, excl. VAT.")],
    included_kwh: Annotated[str, typer.Option(help="kWh included per month.")],
    overage_rate: Annotated[str, typer.Option(help="Per kWh beyond them, excl. VAT.")],
    vat: Annotated[str, typer.Option(help="VAT rate as a fraction, e.g. 0.19.")] = "0",
    currency: Annotated[str, typer.Option()] = "EUR",
    timezone: Annotated[str, typer.Option(help="Months are calendar months here.")] = "UTC",
) -> None:
    """Add or replace a subscription plan."""
    try:
        plan = SubscriptionPlan(
            plan_id,
            currency.upper(),
            _amount(monthly_fee, "--monthly-fee"),
            _amount(included_kwh, "--included-kwh"),
            _amount(overage_rate, "--overage-rate"),
            _amount(vat, "--vat"),
            timezone,
        )
    except (ValueError, KeyError) as exc:
        raise CliError(f"plan {plan_id}: {exc}") from None
    with open_cli_store() as store:
        store.add_plan(plan, _now())
    typer.echo(f"plan {plan_id} saved")


# -- invoices and receipts -----------------------------------------------------------------


def _period(text: str, timezone: str) -> BillingPeriod:
    try:
        year, month = (int(part) for part in text.split("-"))
        return BillingPeriod(year, month, timezone)
    except (ValueError, KeyError):
        raise CliError(
            f"--period must be YYYY-MM (and --timezone a zone name), not {text!r}"
        ) from None


def issue_invoice(store: SqliteStore, driver: DriverRecord, period: BillingPeriod) -> str:
    """Bill the period's subscription (if any) and issue the driver's invoice; its number."""
    now = _now()
    sessions = store.session_costs(driver.id, period.start, period.end)
    subscription = None
    if driver.payment_method == "subscription" and driver.plan_id:
        plan = store.get_plan(driver.plan_id)
        if plan is None:
            raise CliError(f"driver {driver.id}: no plan {driver.plan_id!r}")
        subscription = bill_subscription(plan, driver.id, period, sessions)
        if subscription.posting is not None:
            store.record_postings([subscription.posting])
        sessions = []
    document = build_invoice(
        driver.id,
        period,
        driver.currency,
        now,
        sessions=sessions,
        subscription=subscription,
        postings=store.postings_of(driver.id),
    )
    store.save_invoice(
        document.number,
        driver.id,
        period.label,
        document_to_json(document),
        document_to_csv(document),
        now,
    )
    return document.number


@invoices_app.command("issue")
def invoices_issue(
    period: Annotated[str, typer.Option(help="YYYY-MM")],
    driver: Annotated[str | None, typer.Option(help="Only this driver.")] = None,
    timezone: Annotated[str, typer.Option(help="Months are calendar months here.")] = "UTC",
) -> None:
    """Issue (or reissue) the period's invoice for every driver, or one."""
    billing_period = _period(period, timezone)
    with open_cli_store() as store:
        drivers = (
            [store.get_driver_record(driver)]
            if driver
            else [store.get_driver_record(row["id"]) for row in store.list_drivers()]
        )
        if driver and drivers[0] is None:
            raise CliError(f"no driver {driver!r}")
        numbers = [issue_invoice(store, d, billing_period) for d in drivers if d is not None]
    typer.echo(f"{len(numbers)} invoices issued for {billing_period.label}: {' '.join(numbers)}")


@invoices_app.command("list")
def invoices_list(
    fmt: FormatOption = OutputFormat.table,
    period: Annotated[str | None, typer.Option(help="YYYY-MM")] = None,
) -> None:
    """List issued invoices."""
    with open_cli_store() as store:
        print_rows(
            store.list_invoices(period),
            fmt,
            ["number", "driver_id", "period", "issued_at", "total_incl_vat", "amount_due"],
        )


class DocumentFormat(StrEnum):
    json = "json"
    csv = "csv"


@invoices_app.command("show")
def invoices_show(
    number: Annotated[str, typer.Argument(metavar="NUMBER")],
    fmt: Annotated[DocumentFormat, typer.Option("--format", "-f")] = DocumentFormat.json,
) -> None:
    """An invoice as JSON or CSV (line items, VAT breakdown, totals, paid and due)."""
    with open_cli_store() as store:
        found = store.get_invoice(number)
    if found is None:
        raise CliError(f"no invoice {number!r}")
    body, csv_text = found
    if fmt is DocumentFormat.csv:
        sys.stdout.write(csv_text)
    else:
        sys.stdout.write(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode() + "\n")


@invoices_app.command("receipt")
def invoices_receipt(
    session_id: Annotated[int, typer.Argument(metavar="SESSION")],
    fmt: Annotated[DocumentFormat, typer.Option("--format", "-f")] = DocumentFormat.json,
) -> None:
    """The receipt of one priced session of a driver."""
    with open_cli_store() as store:
        if store.get_session(session_id) is None:
            raise CliError(f"no session {session_id}")
        cost = store.session_cost(session_id)
        if cost is None:
            raise CliError(
                f"session {session_id} has no receipt: it is not priced (running, or no tariff)"
                " or its token belongs to no driver"
            )
        receipt = build_receipt(cost, _now(), store.postings_of(cost.driver_id))
    if fmt is DocumentFormat.csv:
        sys.stdout.write(document_to_csv(receipt))
    else:
        sys.stdout.write(
            orjson.dumps(document_to_json(receipt), option=orjson.OPT_INDENT_2).decode() + "\n"
        )
