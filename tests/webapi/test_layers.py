"""syncd.webapi sits above syncd.dataverse and below syncd.service: its imports point down.

Its reads import nothing above syncd.dataverse. Its one writer (`writer`) is a customer's edit of a
user, which reuses the admin operations (`syncd.admin.modes`) and the rules' list of synced columns,
so it alone may import syncd.admin and syncd.rules; never syncd.service, the commands or the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import syncd.webapi

ABOVE = ("syncd.service", "syncd.sync", "syncd.admin", "syncd.rules", "syncd.commands", "syncd.cli")
ABOVE_THE_WRITER = ("syncd.service", "syncd.sync", "syncd.commands", "syncd.cli")


def test_webapi_imports_nothing_above_it() -> None:
    root = Path(syncd.webapi.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            above = ABOVE_THE_WRITER if path.name == "writer.py" else ABOVE
            for name in names:
                assert not name.startswith(above), f"{path.name} imports {name}"
