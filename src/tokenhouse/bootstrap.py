"""The first Operations account and an admin token: what a new installation starts from."""

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.accounts import repository as accounts_repository
from tokenhouse.accounts import service as accounts
from tokenhouse.accounts.models import Account, AccountType
from tokenhouse.accounts.schemas import AccountCreate
from tokenhouse.auth.actor import system_actor
from tokenhouse.kit.wire import Ref
from tokenhouse.modules.repository import all_modules
from tokenhouse.tokens import service as tokens
from tokenhouse.tokens.lifecycle import Policy
from tokenhouse.tokens.models import ApiToken
from tokenhouse.tokens.schemas import TokenCreate
from tokenhouse.tokens.service import NO_POLICY


@dataclass(frozen=True)
class Bootstrapped:
    account: Account
    token: ApiToken
    secret: str
    created_account: bool


async def bootstrap(*, session: AsyncSession, key: bytes, account_name: str,
                    if_empty: bool = False, policy: Policy = NO_POLICY) -> Bootstrapped | None:
    """Create an Operations account if there is none, and a new admin token holding every
    module an Operations account may use (expiring as `policy` says). With `if_empty`, do
    nothing once any account exists (so `make run` prints a secret on the very first run
    only)."""
    if if_empty and await accounts_repository.any_account(session):
        return None
    catalog = await all_modules(session)
    actor = system_actor(frozenset(m.name for m in catalog), frozenset(m.id for m in catalog))
    account = await accounts_repository.first_operations(session)
    created = account is None
    if account is None:
        account = await accounts.create_account(
            session=session, actor=actor,
            data=AccountCreate(name=account_name, type=AccountType.OPERATIONS))
    if account.is_disabled:
        await accounts.enable_account(session=session, actor=actor, account=account)
    modules = [Ref(id=m.id) for m in catalog if AccountType.OPERATIONS in m.account_types]
    token, secret = await tokens.create_token(
        session=session, actor=actor, key=key, policy=policy,
        data=TokenCreate(name="Administrator", account=Ref(id=account.id), modules=modules,
                         description="Created by 'tokenhouse bootstrap'."))
    return Bootstrapped(account=account, token=token, secret=secret, created_account=created)
