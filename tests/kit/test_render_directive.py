"""`render()` is a directive, not a filter: mpt-api-client sends it bare on a list and as
`render%28%29=` on a single read (`.options(render=True).get(id)`), which was a 400."""

from tests.factories import Factory
from tests.helpers import TOKENS
from tokenhouse.kit.rql import parse_query


def test_both_forms_parse_as_the_directive():
    for raw in ("render()", "render%28%29=", "select=name&render%28%29=", "RENDER()"):
        query = parse_query(raw)
        assert query.render and query.filter is None, raw
    assert not parse_query("select=name").render


async def test_a_single_read_and_a_list_take_the_directive(client, factory: Factory):
    admin = await factory.admin()
    path = f"{TOKENS}/{admin.id}"
    read = await client.get(f"{path}?render%28%29=", headers=admin.headers)
    assert read.status_code == 200, read.text
    selected = await client.get(f"{path}?select=name&render%28%29=", headers=admin.headers)
    assert selected.status_code == 200, selected.text
    assert "modules" in read.json() and "name" in selected.json()
    listed = await client.get(f"{TOKENS}?limit=1&render()", headers=admin.headers)
    assert listed.status_code == 200, listed.text
