"""The one rule on text that bodies (kit/wire.py) and filter values (kit/rql/parser.py) share.

Kept apart, with no imports of the app's own, so that both can use it whatever imports first.
"""

import re

# Text that no column holds: C0 controls but tab, line feed and carriage return (NUL cannot
# even be sent to PostgreSQL), and lone surrogates (no database encoding accepts them). Bodies
# and filter values with it are a 400, the same on SQLite and PostgreSQL.
UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
