"""The module catalog kept in each process: creating a token checks its modules against it
without a query.

The catalog changes only through `tokenhouse import` (and migrations): any write of modules
is a CatalogChanged (kit/invalidation.py), and every process then drops its copy and reads
it again on next use.
The modules held here are detached from any session and must only be read: a session that
needs Module objects to attach (changing a token's modules) loads its own.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from tokenhouse.kit.cache import TaggedCache
from tokenhouse.modules import repository
from tokenhouse.modules.models import Module

KEY = "catalog"


class ModuleCatalog(TaggedCache[dict[str, Module]]):
    def __init__(self) -> None:
        super().__init__(max_entries=1)

    async def by_id(self, session: AsyncSession) -> dict[str, Module]:
        """Every module by id, read from the database when not in memory."""

        async def load() -> dict[str, Module]:
            modules = await repository.all_modules(session)
            for module in modules:
                session.expunge(module)
            return {module.id: module for module in modules}

        return await self.get_or_load(KEY, load)
