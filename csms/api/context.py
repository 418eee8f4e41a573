"""What every route reaches: the running CSMS, the operator-side store pool and the files
directory, and the authenticated caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from csms.api.keys import Scope, key_hash
from csms.runtime.server import Csms
from csms.runtime.store_pool import StorePool


@dataclass
class ApiContext:
    csms: Csms
    db: StorePool
    #: Uploaded diagnostics and hosted firmware live under here, beside the database.
    files: Path

    def now(self) -> datetime:
        return self.csms.wall_clock()


@dataclass(frozen=True)
class Caller:
    key_name: str
    scope: Scope


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(context)]

_bearer = HTTPBearer(auto_error=False, description="An API key: `csms api-keys create NAME`.")


def require(needed: Scope) -> object:
    """A dependency that admits a caller whose key has the `needed` scope (or a wider one)."""

    async def check(
        request: Request,
        ctx: Ctx,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Caller:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                401,
                "an API key is required: send Authorization: Bearer KEY",
                headers={"WWW-Authenticate": "Bearer"},
            )
        digest = key_hash(credentials.credentials)
        found = await ctx.db.run(lambda store: store.api_key_by_hash(digest))
        if found is None:
            raise HTTPException(
                401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
            )
        caller = Caller(found["name"], Scope(found["scope"]))
        request.state.api_key = caller.key_name
        if not caller.scope.allows(needed):
            raise HTTPException(
                403,
                f"this needs a key with the {needed.value} scope; {caller.key_name!r} has"
                f" {caller.scope.value}",
            )
        return caller

    return Depends(check)


ReadKey = Annotated[Caller, require(Scope.read)]
OperateKey = Annotated[Caller, require(Scope.operate)]
AdminKey = Annotated[Caller, require(Scope.admin)]
