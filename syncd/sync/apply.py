"""Apply: the only writer of a run's operations, batch by batch, through the run's Storage.

Creates, updates and enables wait in a queue of at most ``batch_size`` users and are written a
batch per transaction. Disables are held back (the first ten thousand in memory, the rest in a
temporary table) until the run's read has succeeded and the mass-disable guard has passed.

The latest copy of a user wins: when a user is read again, :meth:`Applier.supersede` drops what an
earlier copy queued or held for them, so the run decides once more from the row as it was.

A batch that fails is written again row by row, so a bad record fails alone, with an event, and
the rest of its batch goes through (the way Keycloak's LDAP sync counts a failed user). In a dry
run nothing is written: operations are counted and collected for the report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd.rules import Action
from syncd.sync.plan import Operation
from syncd.sync.storage import Storage

log = structlog.get_logger(__name__)

HELD_IN_MEMORY = 10_000  # held-back disables kept in memory before they go to the temporary table
PLANNED_LIMIT = 10_000  # operations a dry run lists in its report


@dataclass
class Counts:
    """What a run did, per user: the figures of ``sync_run`` and of the run's summary."""

    read: int = 0
    created: int = 0
    updated: int = 0
    enabled: int = 0
    disabled: int = 0
    unchanged: int = 0
    failed: int = 0
    blocked_disables: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    @property
    def written(self) -> int:
        return self.created + self.updated + self.enabled + self.disabled


_COUNTER = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.ENABLE: "enabled",
    Action.DISABLE: "disabled",
}


@dataclass
class Applier:
    """Queues, holds and writes one run's operations. See the module docstring."""

    storage: Storage
    batch_size: int = 5000
    dry_run: bool = False
    counts: Counts = field(default_factory=Counts)
    planned: list[dict[str, Any]] = field(default_factory=list)
    bulk_create: bool = False  # the environment had no regular rows: creates may skip conflict handling
    _pending: dict[str, Operation] = field(default_factory=dict)
    _seen: list[str] = field(default_factory=list)
    _held: dict[str, Operation] = field(default_factory=dict)
    _spilled: int = 0
    _hashes: dict[str, tuple[int, int]] = field(default_factory=dict)

    # -- queueing ------------------------------------------------------------------------------

    def add(self, op: Operation) -> None:
        """Queue one operation (a disable is held back); a full batch is written at once."""
        if op.action is Action.DISABLE:
            self._held[op.object_id] = op
            if len(self._held) >= HELD_IN_MEMORY:
                self.storage.spill_held(list(self._held.values()))
                self._spilled += len(self._held)
                self._held = {}
            return
        self._pending[op.object_id] = op
        if len(self._pending) >= self.batch_size:
            self.flush()

    def record_hash(self, object_id: str, input_hash: int, read_version: int) -> None:
        """Queue recording on a row left as it is what it was decided from (``syncd.sync.inputs``);
        written with the next batch, if the row is still at ``read_version`` by then."""
        self._hashes[object_id] = (input_hash, read_version)
        if len(self._hashes) >= self.batch_size:
            self.flush()

    def supersede(self, object_ids: Sequence[str]) -> None:
        """Forget what earlier copies of these users queued or held: a later copy decides again."""
        pending, held, hashes = self._pending, self._held, self._hashes
        for oid in object_ids:
            if oid in pending:
                del pending[oid]
            if oid in held:
                del held[oid]
            if oid in hashes:
                del hashes[oid]
        if self._spilled:
            self._spilled -= self.storage.drop_held(object_ids)

    def mark_seen(self, object_ids: Iterable[str]) -> None:
        """Remember that a full run read these users (written with the next batch)."""
        self._seen.extend(object_ids)
        if len(self._seen) >= self.batch_size:
            self.flush()

    @property
    def held_count(self) -> int:
        return len(self._held) + self._spilled

    # -- writing -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the queued operations and seen ids: one transaction, or one per row after a failure."""
        ops = list(self._pending.values())
        seen, self._pending, self._seen = self._seen, {}, []
        hashes = [(oid, h, v) for oid, (h, v) in self._hashes.items()]
        self._hashes = {}
        if self.dry_run:
            self.storage.mark_seen(seen)
            for op in ops:
                self._count(op)
            return
        if not ops and not seen and not hashes:
            return
        bulk = self.bulk_create and all(op.action is Action.CREATE for op in ops)
        try:
            self.storage.write(ops, seen, bulk_create=bulk, hashes=hashes)
        except Exception as exc:
            if not ops:
                raise
            if bulk:
                # A row appeared since the run began (an administrator's add): merge from now on.
                log.info("sync.bulk_copy_conflict", rows=len(ops), error=str(exc)[:200])
                self.bulk_create = False
                self._pending, self._seen = {op.object_id: op for op in ops}, seen
                self._hashes = {oid: (h, v) for oid, h, v in hashes}
                self.flush()
                return
            log.warning("sync.batch_failed", rows=len(ops), error=str(exc)[:300])
            self._write_one_by_one(ops, seen, hashes)
            return
        for op in ops:
            self._count(op)

    def _write_one_by_one(
        self, ops: Sequence[Operation], seen: Sequence[str], hashes: Sequence[tuple[str, int, int]]
    ) -> None:
        self.storage.write([], seen, hashes=hashes)
        for op in ops:
            try:
                self.storage.write([op])
            except Exception as exc:
                self.counts.failed += 1
                error = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
                log.warning("sync.row_failed", object_id=op.object_id, error=error)
                self.storage.write_failure(op, error)
            else:
                self._count(op)

    def apply_held(self) -> None:
        """Write every held-back disable (the guard has passed)."""
        self.flush()
        if self._spilled:
            chunk: list[Operation] = []
            for op in self.storage.held(HELD_IN_MEMORY):
                chunk.append(op)
                if len(chunk) >= self.batch_size:
                    self._write_held(chunk)
                    chunk = []
            self._write_held(chunk)
            self.storage.clear_held()
            self._spilled = 0
        self._write_held(list(self._held.values()))
        self._held = {}

    def _write_held(self, ops: list[Operation]) -> None:
        for i in range(0, len(ops), self.batch_size):
            self._pending = {op.object_id: op for op in ops[i : i + self.batch_size]}
            self.flush()

    def block_held(self) -> None:
        """The guard stopped the held-back disables: count them, list them in a dry run, drop them.

        A real run writes one ``withheld`` event per disable (its rule, ``Withheld by the
        mass-disable guard: <its reason>``), ``batch_size`` to a transaction, the spilled ones read
        back a chunk at a time: the blocked run's pending disables are its withheld events."""
        self.counts.blocked_disables = self.held_count
        if self.dry_run:
            for op in self._held.values():
                if len(self.planned) >= PLANNED_LIMIT:
                    break
                self.planned.append(op.describe() | {"blocked": True})
        else:
            self.flush()
            chunk: list[Operation] = []
            for op in self.storage.held(HELD_IN_MEMORY) if self._spilled else ():
                chunk.append(op)
                if len(chunk) >= self.batch_size:
                    self.storage.write_withheld(chunk)
                    chunk = []
            self.storage.write_withheld(chunk)
            held = list(self._held.values())
            for i in range(0, len(held), self.batch_size):
                self.storage.write_withheld(held[i : i + self.batch_size])
        self.clear_held()

    def clear_held(self) -> None:
        self._held = {}
        if self._spilled:
            self.storage.clear_held()
            self._spilled = 0

    def withdraw(self, object_ids: Sequence[str]) -> None:
        """Take back rows this run created from a copy of a user that a later copy overrules."""
        if self.dry_run or not object_ids:
            return
        self.flush()
        removed = self.storage.withdraw(object_ids)
        self.counts.created -= removed
        log.info("sync.creates_withdrawn", rows=removed)

    def _count(self, op: Operation) -> None:
        name = _COUNTER[op.action]
        setattr(self.counts, name, getattr(self.counts, name) + 1)
        if self.dry_run and len(self.planned) < PLANNED_LIMIT:
            self.planned.append(op.describe())
