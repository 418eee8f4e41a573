"""The FastAPI application: routers, error answers, the audit middleware and the dashboard.

Authentication: `Authorization: Bearer KEY`. Scopes: `read` for every GET under `/api`;
`operate` for commands, diagnostics, configuration snapshots, local list pushes, token and
driver blocking, alert acknowledgement, firmware campaigns and device model refreshes;
`admin` for creating, changing and deleting stations, tokens, drivers, API keys, firmware
files, desired configuration and alert thresholds, and for reading the audit log. `/`,
`/static`, `/openapi.json`, `/docs`, `/metrics`, and the chargers' `/uploads/...` and
`/firmware/...` need no key.
"""

from __future__ import annotations

import importlib.resources

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from csms.api.audit import AuditMiddleware
from csms.api.context import ApiContext
from csms.api.routes import (
    admin,
    alerts,
    commands,
    credentials,
    device_model,
    drivers,
    live,
    maintenance,
    sessions,
    stations,
)
from csms.domain.identity import BadStationId
from csms.storage.base import StoreError
from csms.storage.sqlite_api import Conflict, NotFound

STATIC = importlib.resources.files("csms.api").joinpath("static")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def create_app(ctx: ApiContext) -> FastAPI:
    app = FastAPI(
        title="csms operator API",
        version="1",
        description=__doc__,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
    )
    app.state.ctx = ctx
    routers = (
        stations,
        device_model,
        credentials,
        drivers,
        sessions,
        commands,
        live,
        alerts,
        maintenance,
        admin,
    )
    for module in routers:
        app.include_router(module.router)
    app.add_middleware(AuditMiddleware, context=lambda: ctx)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(StoreError)
    async def refused(request: Request, exc: StoreError) -> JSONResponse:
        return _error(422, str(exc))

    @app.exception_handler(BadStationId)
    async def bad_station(request: Request, exc: BadStationId) -> JSONResponse:
        return _error(422, str(exc))

    # Input no model bound: text that is not Unicode (lone surrogates in JSON), numbers or
    # moments beyond what SQLite and datetime hold.
    @app.exception_handler(UnicodeEncodeError)
    async def not_unicode(request: Request, exc: UnicodeEncodeError) -> JSONResponse:
        return _error(422, "text must be valid Unicode (it holds a lone surrogate)")

    @app.exception_handler(OverflowError)
    async def overflow(request: Request, exc: OverflowError) -> JSONResponse:
        return _error(422, f"a value is out of range: {exc}")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(str(STATIC.joinpath("index.html")), media_type="text/html")

    return app
