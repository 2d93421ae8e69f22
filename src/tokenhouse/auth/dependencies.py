"""The one authentication dependency: routes declare `actor: CurrentActor`."""

from typing import Annotated

from fastapi import Depends, Request

from tokenhouse.auth.actor import Actor
from tokenhouse.auth.service import authenticate
from tokenhouse.kit.db import Session
from tokenhouse.kit.problems import Unauthorized


async def current_actor(request: Request, session: Session) -> Actor:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("Authentication is required: send 'Authorization: Bearer <token>'.")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("Use the Bearer scheme: 'Authorization: Bearer <token>'.")
    actor = await authenticate(session=session, secret=secret.strip(),
                               key=request.app.state.hmac_key,
                               cache=request.app.state.credentials)
    if actor.token_id is not None:
        request.app.state.last_access.touch(actor.token_id)
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]
