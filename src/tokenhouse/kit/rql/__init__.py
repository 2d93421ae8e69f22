"""The platform's Resource Query Language (see shared/spec/rql.md): filters, select, order,
limit and offset in a list's query string, evaluated by the database.

    query = parse_query(raw_query_string)          # syntax only (parser.py)
    where = compile_filter(query.filter, schema)   # typed against a resource (sql.py)
    shape = compile_select(query.select, schema)   # the response shape (shape.py)
"""

from tokenhouse.kit.rql.parser import Query, parse_query
from tokenhouse.kit.rql.schema import Collection, Obj, Resource, Scalar

__all__ = ["Collection", "Obj", "Query", "Resource", "Scalar", "parse_query"]
