"""syncd.webapi sits above syncd.dataverse and below syncd.service: its imports point down."""

from __future__ import annotations

import ast
from pathlib import Path

import syncd.webapi

ABOVE = ("syncd.service", "syncd.sync", "syncd.admin", "syncd.rules", "syncd.commands", "syncd.cli")


def test_webapi_imports_nothing_above_it() -> None:
    root = Path(syncd.webapi.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(ABOVE), f"{path.name} imports {name}"
