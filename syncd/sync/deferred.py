"""Disables held back until the end of a run, in bounded memory.

A run decides its disables as pages arrive but applies them only after the whole read has
succeeded and the mass-disable guard has passed. The first few thousand wait in memory; past
that they wait in a temporary table of the run's connection, so approving the disable of a
large share of a million-user environment does not hold a million operations in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import orjson

from syncd.rules import Action
from syncd.sync.plan import Operation

IN_MEMORY = 10_000  # disables kept in memory before they go to the temporary table
_TS = (21, 22)  # createdon, modifiedon in a staged row


class DeferredDisables:
    def __init__(self, conn: Any, *, sqlite: bool, in_memory: int | None = None) -> None:
        self.conn = conn
        self.sqlite = sqlite
        self.in_memory = in_memory or IN_MEMORY
        self.count = 0
        self._buffer: list[Operation] = []
        self._spilled = 0

    def add(self, op: Operation) -> None:
        self._buffer.append(op)
        self.count += 1
        if len(self._buffer) >= self.in_memory:
            self._spill()

    def clear(self) -> None:
        self._buffer = []
        self.count = 0
        if self._spilled:
            cur = self.conn.cursor()
            cur.execute("DELETE FROM _syncd_disables")
            self.conn.commit()
            cur.close()
            self._spilled = 0

    def __iter__(self) -> Iterator[Operation]:
        """Every held disable, in the order decided, a chunk in memory at a time."""
        if self._spilled:
            p = "?" if self.sqlite else "%s"
            last = 0
            while True:
                cur = self.conn.cursor()
                cur.execute(
                    f"SELECT seq, op FROM _syncd_disables WHERE seq > {p} ORDER BY seq LIMIT {p}",
                    (last, self.in_memory),
                )
                rows = cur.fetchall()
                self.conn.commit()
                cur.close()
                if not rows:
                    break
                last = rows[-1][0]
                for _, blob in rows:
                    yield _load(blob)
        yield from self._buffer

    def _spill(self) -> None:
        cur = self.conn.cursor()
        if not self._spilled:
            seq_type = "INTEGER" if self.sqlite else "bigint"
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS _syncd_disables (seq {seq_type}, op TEXT)")
            cur.execute("DELETE FROM _syncd_disables")
        rows = [(self._spilled + i + 1, _dump(op)) for i, op in enumerate(self._buffer)]
        if self.sqlite:
            cur.executemany("INSERT INTO _syncd_disables (seq, op) VALUES (?, ?)", rows)
        else:
            with cur.copy("COPY _syncd_disables (seq, op) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
        self.conn.commit()
        cur.close()
        self._spilled += len(rows)
        self._buffer = []


def _dump(op: Operation) -> str:
    return orjson.dumps(
        [op.object_id, op.systemuserid, list(op.row), op.rule, op.reason, dict(op.changes)], default=str
    ).decode()


def _load(blob: str) -> Operation:
    object_id, systemuserid, row, rule, reason, changes = orjson.loads(blob)
    for i in _TS:
        if isinstance(row[i], str):
            row[i] = datetime.fromisoformat(row[i])
    return Operation(Action.DISABLE, object_id, systemuserid, tuple(row), rule, reason, changes)
