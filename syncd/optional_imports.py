"""Importing a library without the optional packages it would pick up but syncd does not use there.

Two libraries of syncd's stack import rich when it is installed, whatever they are used for:
``import structlog`` imports ``structlog.dev`` (its console renderer, whose tracebacks rich draws),
and ``import httpx`` imports ``httpx._main`` (the ``httpx`` command line: click, rich and pygments).
A run that logs JSON lines and prints JSON needs none of it, and importing it costs a good part of
the whole `syncd sync` process on a small delta (benchmarks/README.md). Each library falls back by
itself when the package is missing (structlog: plain tracebacks; httpx: a stub ``httpx.main``), so
syncd imports them with the package hidden where it is not needed: ``syncd.logs`` structlog, unless
the console renderer is chosen (and then its rich tracebacks are restored), ``syncd.directory.client``
httpx. A package already imported is never hidden, and nothing stays hidden after the import.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def hidden(*packages: str) -> Iterator[None]:
    """While the block runs, ``import PACKAGE`` raises ImportError for each of ``packages`` not
    imported yet, as if it were not installed; after it, each imports as usual."""
    hide = [name for name in packages if name not in sys.modules]
    for name in hide:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "not found"
    try:
        yield
    finally:
        for name in hide:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
