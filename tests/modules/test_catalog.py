"""The module catalog kept in memory (modules/catalog.py): creating a token checks against it,
and a change of the catalog (an import) is seen by the next create."""

import json

from sqlalchemy import delete

from tests.helpers import TOKENS, problem
from tokenhouse.models import token_modules
from tokenhouse.modules.models import Module
from tokenhouse.transfer.service import import_lines

NEW = {"id": "MOD-9100", "name": "Catalog Probe", "description": "Added by a test.",
       "accountTypes": ["Client", "Operations"], "isEnabledByDefault": False,
       "isConfigurable": False, "paid": False, "settings": {}, "filters": {}}


async def test_an_imported_module_can_be_given_by_the_next_create(client, factory, app):
    admin = await factory.admin()
    account = await factory.account("Client")
    body = {"name": "probe", "account": {"id": account["id"]}, "modules": [{"id": NEW["id"]}]}
    # The catalog is now in memory, without MOD-9100.
    problem(await client.post(TOKENS, json=body, headers=admin.headers), 400)
    assert app.state.runtime.modules.get("catalog") is not None
    access = (await client.get("/public/v1/accounts/modules/MOD-1732",
                               headers=admin.headers)).json()
    try:
        async with app.state.runtime.sessions() as session:
            await import_lines(session=session, lines=[json.dumps(NEW)])
            await session.commit()
        # The admin token does not hold the new module, so it may not give it ...
        refused = problem(await client.post(TOKENS, json=body, headers=admin.headers), 400)
        assert "cannot be given by a token that does not hold it" in str(refused["errors"])
        # ... but it may give a module whose catalog entry the import changed.
        changed = {"id": "MOD-1732", "description": "Changed by an import."}
        async with app.state.runtime.sessions() as session:
            await import_lines(session=session, lines=[json.dumps(changed)])
            await session.commit()
        created = await client.post(TOKENS, json=dict(body, modules=[{"id": "MOD-1732"}]),
                                    headers=admin.headers)
        assert created.status_code == 201, created.text
        assert created.json()["modules"][0]["description"] == "Changed by an import."
    finally:
        async with app.state.runtime.sessions() as session:
            await session.execute(delete(token_modules).where(
                token_modules.c.module_id == NEW["id"]))
            await session.execute(delete(Module).where(Module.id == NEW["id"]))
            await import_lines(session=session, lines=[json.dumps(
                {"id": "MOD-1732", "description": access["description"]})])
            await session.commit()
