"""`serve_api`: the operator API on hypercorn's trio worker, in the CSMS's own nursery, with
the services that feed it (alerts, firmware campaigns)."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import structlog
import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from csms.api.app import create_app
from csms.api.context import ApiContext
from csms.runtime.alerts import AlertMonitor
from csms.runtime.campaigns import CampaignRunner
from csms.runtime.server import Csms
from csms.runtime.store_pool import StorePool

log = structlog.get_logger("csms.api")


def files_dir(database_path: str) -> Path:
    """Uploaded and hosted files live beside the database: `csms.db` -> `csms-files/`."""
    db = Path(database_path)
    return db.with_name(f"{db.stem}-files")


def _hypercorn_config(host: str, port: int, *, reuse_port: bool = False) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    if reuse_port:  # workers of `csms serve --workers N` share the port
        from csms.cluster.workers import shared_socket

        config.bind = [f"fd://{shared_socket(host, port).detach()}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    # Live event streams stay open: on shutdown, do not wait for them.
    config.graceful_timeout = 1.0
    return config


async def serve_api(csms: Csms, *, task_status: trio.TaskStatus[None]) -> None:
    settings = csms.settings
    db = StorePool(settings.database_url)
    if db.path == ":memory:":
        db.close()
        log.warning("no HTTP API: the database is in memory (the API needs a file)")
        task_status.started()
        return
    try:
        files = settings.api_files_dir or (
            Path("csms-files") if settings.is_postgres else files_dir(db.path)
        )
        ctx = ApiContext(csms, db, files)
        async with trio.open_nursery() as nursery:
            await nursery.start(AlertMonitor(csms, db).run)
            await nursery.start(CampaignRunner(csms, db).run)
            try:
                binds = await nursery.start(
                    serve,
                    create_app(ctx),
                    _hypercorn_config(
                        settings.api_host, settings.api_port, reuse_port=settings.reuse_port
                    ),
                )
            except (OSError, BaseExceptionGroup) as exc:
                error = _only_os_error(exc)
                if error is None:
                    raise
                raise OSError(
                    error.errno or errno.EADDRINUSE,
                    f"HTTP API on {settings.api_host}:{settings.api_port}:"
                    f" {error.strerror or error}",
                ) from None
            csms.http_port = int(binds[0].rsplit(":", 1)[1])
            log.info("HTTP API listening", host=settings.api_host, port=csms.http_port)
            task_status.started()
    finally:
        db.close()


def _only_os_error(exc: BaseException) -> OSError | None:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc if isinstance(exc, OSError) else None
