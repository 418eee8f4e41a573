"""The ledger steps of rotating a station's password (`csms.domain.password_rotation` has
the rules): offer the new password's hash, confirm it when the station logs in with it,
withdraw it when the station refuses it. Each step is a `PasswordRotation` event through the
ledger actor, so it is durable before the caller goes on and lands in the audit log.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from csms.domain.events import PasswordRotation, PasswordStage
from csms.domain.replies import RotationApplied
from csms.runtime.ledger_actor import LedgerActor, LedgerUnavailable

log = structlog.get_logger("csms.password_rotation")


async def record_step(
    ledger: LedgerActor, station_id: str, stage: PasswordStage, password_hash: str, now: datetime
) -> bool:
    """Record one step; whether it changed anything (see `LedgerTx.rotate_password`)."""
    reply = await ledger.submit(PasswordRotation(station_id, stage, password_hash, now))
    assert isinstance(reply, RotationApplied)
    return reply.applied


async def confirm_rotation(
    ledger: LedgerActor, station_id: str, password_hash: str, now: datetime
) -> None:
    """The station logged in with its pending password: it replaces the old one.

    A failure here does not refuse the login: the pending password stays accepted, and the
    next login confirms it.
    """
    try:
        applied = await record_step(ledger, station_id, PasswordStage.CONFIRMED, password_hash, now)
    except LedgerUnavailable:
        log.warning("cannot record a confirmed password rotation", station_id=station_id)
        return
    log.info("station logged in with its new password", station_id=station_id, applied=applied)
