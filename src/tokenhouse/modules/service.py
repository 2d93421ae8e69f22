"""Reading the module catalog, and checking which modules a token may be given."""

from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.accounts.models import Account
from tokenhouse.auth.actor import Actor
from tokenhouse.kit.problems import NotFound, ValidationFailed
from tokenhouse.kit.rql import Query
from tokenhouse.kit.wire import Ref
from tokenhouse.modules import repository
from tokenhouse.modules.catalog import ModuleCatalog
from tokenhouse.modules.models import Module


async def list_modules(*, session: AsyncSession, actor: Actor,
                       query: Query) -> tuple[list[Module], int]:
    """The catalog entries the actor's account type may use (all of them for Operations)."""
    return await repository.list_visible(session, actor, query)


async def get_module(*, session: AsyncSession, actor: Actor, module_id: str) -> Module:
    module = await repository.get_visible(session, actor, module_id)
    if module is None:
        raise NotFound(f"Module {module_id} not found.")
    return module


async def grantable(*, session: AsyncSession, actor: Actor, account: Account,
                    refs: list[Ref], already: frozenset[str] = frozenset(),
                    catalog: ModuleCatalog | None = None) -> list[Module]:
    """The modules named by `refs`, checked for a token of `account` given by `actor`.

    A token can never give what it does not hold itself (privilege escalation), and no token
    may use a module that its account's type may not use. Modules in `already` (those the
    token holds now) may be kept by an actor that does not hold them, so a client can PUT
    back what it read.

    With `catalog`, the modules returned are the catalog's read-only copies (see
    modules/catalog.py); without it they are loaded into `session`.
    """
    wanted = list(dict.fromkeys(ref.id for ref in refs))
    if catalog is not None:
        found = await catalog.by_id(session)
    else:
        found = await repository.by_ids(session, wanted)
    problems: list[str] = []
    for module_id in wanted:
        module = found.get(module_id)
        # A module the actor may not see (GET /modules/{id} is 404 for it) does not exist
        # as far as the actor is concerned: its name must not leak through this message.
        if module is None or not repository.can_see(actor, module):
            problems.append(f"Module {module_id} does not exist.")
        elif module_id not in already and module_id not in actor.module_ids:
            problems.append(f"Module {module_id} ({module.name}) cannot be given by a token "
                            "that does not hold it.")
        elif account.type not in module.account_types:
            problems.append(f"Module {module_id} ({module.name}) is not available to "
                            f"{account.type} accounts.")
    if problems:
        raise ValidationFailed({"modules": problems}, "One or more modules cannot be given.")
    return [found[module_id] for module_id in wanted]
