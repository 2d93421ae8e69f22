"""Factories: real rows made through the real services (as the server's operator would),
so that tests start from states the API itself can produce."""

from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI

from tokenhouse.accounts import service as accounts
from tokenhouse.accounts.schemas import AccountCreate, render_account
from tokenhouse.auth.actor import Actor, system_actor
from tokenhouse.kit.wire import Ref
from tokenhouse.modules.repository import all_modules
from tokenhouse.tokens import service as tokens
from tokenhouse.tokens.schemas import TokenCreate

ALL_OF_TYPE = object()


@dataclass(frozen=True)
class Issued:
    """A token made by a factory: its id, its secret and its account."""

    id: str
    secret: str
    account_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secret}"}


class Factory:
    def __init__(self, app: FastAPI, client: httpx.AsyncClient):
        self.app = app
        self.client = client
        self._n = 0

    def _name(self, kind: str) -> str:
        self._n += 1
        return f"{kind} {self._n}"

    async def _system(self, session: Any) -> tuple[Actor, list[Any]]:
        catalog = await all_modules(session)
        return system_actor(frozenset(m.name for m in catalog),
                            frozenset(m.id for m in catalog)), catalog

    async def modules(self) -> dict[str, str]:
        """Module name -> id, for the whole catalog."""
        async with self.app.state.runtime.sessions() as session:
            return {m.name: m.id for m in await all_modules(session)}

    async def account(self, type: str = "Client", name: str | None = None,
                      disabled: bool = False) -> dict[str, Any]:
        async with self.app.state.runtime.sessions() as session:
            actor, _ = await self._system(session)
            account = await accounts.create_account(
                session=session, actor=actor,
                data=AccountCreate(name=name or self._name(type), type=type))
            if disabled:
                await accounts.disable_account(session=session, actor=actor, account=account)
            await session.commit()
            return render_account(account)

    async def token(self, account_id: str, modules: Any = ("Access Management",),
                    name: str | None = None, status: str = "Active") -> Issued:
        """A token of `account_id` holding `modules` (names; ALL_OF_TYPE: every module the
        account's type may use), moved to `status` through the service."""
        async with self.app.state.runtime.sessions() as session:
            actor, catalog = await self._system(session)
            account = await accounts.get_account(session=session, actor=actor,
                                                 account_id=account_id)
            if modules is ALL_OF_TYPE:
                chosen = [m.id for m in catalog if account.type in m.account_types]
            else:
                by_name = {m.name: m.id for m in catalog}
                chosen = [by_name[name] for name in modules]
            token, secret = await tokens.create_token(
                session=session, actor=actor, key=self.app.state.runtime.hmac_key,
                data=TokenCreate(name=name or self._name("Token"), account=Ref(id=account_id),
                                 modules=[Ref(id=i) for i in chosen]))
            if status in ("Disabled", "Deleted"):
                # create_token writes with plain inserts: load the token to change it
                token = await tokens.get_token(session=session, actor=actor, token_id=token.id)
                await tokens.disable_token(session=session, actor=actor, token=token)
            if status == "Deleted":
                await tokens.delete_token(session=session, actor=actor, token=token)
            await session.commit()
            return Issued(id=token.id, secret=secret, account_id=account_id)

    async def admin(self) -> Issued:
        """An Operations account and a token with every module it may use."""
        account = await self.account("Operations")
        return await self.token(account["id"], ALL_OF_TYPE, name="Admin")

    async def tenant(self, type: str = "Client",
                     modules: Any = ("Access Management",)) -> Issued:
        """A Client or Vendor account and a token of it."""
        account = await self.account(type)
        return await self.token(account["id"], modules)
