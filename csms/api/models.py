"""Request bodies of the operator API, with the bounds that keep bad input out of the store."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from csms.api.keys import Scope
from csms.domain.identity import validate_station_id
from csms.domain.postings import check_driver_id

TokenStatus = Literal["Accepted", "Blocked", "Expired", "Invalid"]
PaymentMethod = Literal["card", "wallet", "subscription", "invoice"]
StationId = Annotated[str, Field(min_length=1, max_length=48), AfterValidator(validate_station_id)]
IdTag = Annotated[str, Field(min_length=1, max_length=20)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
DriverId = Annotated[str, Field(min_length=1, max_length=100), AfterValidator(check_driver_id)]
SmallInt = Annotated[int, Field(ge=0, le=2**31 - 1)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StationCreate(Body):
    id: StationId
    security_profile: Annotated[int, Field(ge=0, le=3)] = 0


class StationUpdate(Body):
    security_profile: Annotated[int | None, Field(ge=0, le=3)] = None
    registered: bool | None = None


class TokenCreate(Body):
    id_tag: IdTag
    status: TokenStatus = "Accepted"
    expiry: datetime | None = None
    parent_id_tag: IdTag | None = None
    max_active_transactions: Annotated[int | None, Field(ge=1, le=1000)] = None
    driver_id: DriverId | None = None


class TokenUpdate(Body):
    status: TokenStatus | None = None
    expiry: datetime | None = None
    parent_id_tag: IdTag | None = None
    max_active_transactions: Annotated[int | None, Field(ge=1, le=1000)] = None
    driver_id: DriverId | None = None


class DriverBody(Body):
    payment_method: PaymentMethod
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"
    card_ref: Annotated[str | None, Field(max_length=200)] = None
    plan_id: Annotated[str | None, Field(max_length=100)] = None
    wallet_minimum: Annotated[Decimal | None, Field(ge=0, le=10**9, allow_inf_nan=False)] = None
    name: Annotated[str | None, Field(max_length=200)] = None
    email: Annotated[str | None, Field(max_length=200)] = None


class DriverCreate(DriverBody):
    id: DriverId


class KeyCreate(Body):
    name: Name
    scope: Scope


class LocalListPush(Body):
    update_type: Literal["Full"] = "Full"


class DiagnosticsRequest(Body):
    """GetDiagnostics with a location on this server; the rest as OCPP names it."""

    base_url: Annotated[
        str | None,
        Field(
            max_length=500,
            pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
            description="How chargers reach this server; the request's own base URL if unset.",
        ),
    ] = None
    startTime: datetime | None = None
    stopTime: datetime | None = None
    retries: Annotated[int | None, Field(ge=0, le=100)] = None
    retryInterval: Annotated[int | None, Field(ge=0, le=86400)] = None


class DesiredConfiguration(Body):
    """Desired values by configuration key; null removes a key."""

    values: dict[
        Annotated[str, Field(min_length=1, max_length=50)],
        Annotated[str | None, Field(max_length=500)],
    ]


class CampaignCreate(Body):
    firmware: Annotated[str, Field(min_length=1, max_length=200)]
    stations: Annotated[list[StationId], Field(min_length=1, max_length=100_000)]
    name: Annotated[str | None, Field(max_length=200)] = None
    batch_size: Annotated[int, Field(ge=1, le=10_000)] = 10
    start_at: datetime | None = None
    retries: Annotated[int, Field(ge=0, le=100)] = 1
    retry_interval: Annotated[int, Field(ge=0, le=86400)] = 60
    target_timeout_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 3600
    base_url: Annotated[
        str | None, Field(max_length=500, pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    ] = None


class AlertSettings(Body):
    stuck_session_after_s: Annotated[float | None, Field(gt=0, le=30 * 86400)] = None
    boot_loop_boots: Annotated[float | None, Field(ge=2, le=1000)] = None
    boot_loop_window_s: Annotated[float | None, Field(gt=0, le=30 * 86400)] = None
    offline_grace_s: Annotated[float | None, Field(ge=0, le=30 * 86400)] = None
