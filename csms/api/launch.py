"""`serve_api` as `run_csms` starts it: the HTTP side's libraries are imported only here, so
a CSMS without them installed still serves OCPP (and says what to install)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
import trio

if TYPE_CHECKING:
    from csms.runtime.server import Csms

log = structlog.get_logger("csms.api")


async def serve_api(csms: Csms, *, task_status: trio.TaskStatus[None]) -> None:
    try:
        from csms.api.serve import serve_api as serve
    except ImportError as exc:
        log.error(
            "no HTTP API: a library it needs is not installed",
            missing=exc.name,
            fix="pip install fastapi hypercorn",
        )
        task_status.started()
        return
    await serve(csms, task_status=task_status)
