"""The audit log: every mutating call under `/api` (POST, PUT, PATCH, DELETE), refused ones
included, with the key that made it, the path, the request body and the status answered.

An ASGI middleware, so it sees what the client sent and what was answered whatever route or
error handler ran. Large or binary bodies (firmware files) are noted by size only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import trio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from csms.api.context import ApiContext

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Bodies up to this size that are JSON are kept whole; others as "<N bytes type>".
MAX_BODY = 4096


class AuditMiddleware:
    def __init__(self, app: ASGIApp, context: Callable[[], ApiContext]) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in MUTATING
            or not str(scope["path"]).startswith("/api/")
        ):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        size = 0
        status = 500

        async def receiving() -> Message:
            nonlocal size
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                size += len(chunk)
                if len(body) <= MAX_BODY:
                    body.extend(chunk[: MAX_BODY + 1 - len(body)])
            return message

        recorded = False

        async def record() -> None:
            nonlocal recorded
            if not recorded:
                recorded = True
                with trio.CancelScope(shield=True):
                    await self._record(scope, status, _body_text(scope, bytes(body), size))

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Recorded before the answer completes: a client that reads the log next
                # finds its call there.
                await record()
            await send(message)

        try:
            await self.app(scope, receiving, sending)
        finally:
            await record()

    async def _record(self, scope: Scope, status: int, body: str | None) -> None:
        ctx = self.context()
        state: dict[str, Any] = scope.get("state") or {}
        client = scope.get("client")
        query = scope.get("query_string", b"").decode("latin-1")
        path = str(scope["path"]) + (f"?{query}" if query else "")
        now = ctx.now()
        await ctx.db.run(
            lambda store: store.write_audit(
                now,
                state.get("api_key"),
                str(scope["method"]),
                _storable(path),
                status,
                None if body is None else _storable(body),
                f"{client[0]}:{client[1]}" if client else None,
            )
        )


def _body_text(scope: Scope, body: bytes, size: int) -> str | None:
    if size == 0:
        return None
    headers = dict(scope.get("headers") or [])
    content_type = headers.get(b"content-type", b"").decode("latin-1")
    if size <= MAX_BODY and "json" in content_type:
        try:
            return _redacted(body.decode("utf-8"))
        except UnicodeDecodeError:
            pass
    return f"<{size} bytes {content_type or 'unknown type'}>"


REDACTED = "<redacted>"


def _redacted(text: str) -> str:
    """The body with station passwords replaced: a `password` field, and the password that
    a ChangeConfiguration of AuthorizationKey or a SetVariables of BasicAuthPassword sends."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return orjson.dumps(_without_secrets(body)).decode() if _has_secret(body) else text


def _has_secret(value: Any) -> bool:
    return bool(_without_secrets(value) != value)


def _without_secrets(value: Any) -> Any:
    if isinstance(value, list):
        return [_without_secrets(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {k: REDACTED if k == "password" else _without_secrets(v) for k, v in value.items()}
    if out.get("key") == "AuthorizationKey" and "value" in out:
        out["value"] = REDACTED
    variable = out.get("variable")
    is_password = isinstance(variable, dict) and variable.get("name") == "BasicAuthPassword"
    if is_password and "attributeValue" in out:
        out["attributeValue"] = REDACTED
    return out


def _storable(text: str) -> str:
    """Text SQLite can store: lone surrogates (from odd client bytes) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
