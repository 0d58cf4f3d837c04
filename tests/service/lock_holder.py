"""Another process holding an environment's run lock, as a run in it would, until it is killed.

    python lock_holder.py DATABASE_URL ENVIRONMENT_ID [--running]

It takes the lock with ``locks_for`` (an advisory lock on PostgreSQL, a file lock beside a SQLite
file), with ``--running`` records a run of the environment as a run starting would (outcome
'running'), prints "held" (or "busy" and exits 3 when the lock is taken), then sleeps. Killed with
SIGKILL, it leaves what a run killed in its middle leaves: the run row 'running', and no lock.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HOLDER = str(Path(__file__).resolve())


@contextmanager
def holding(db_url: str, environment_id: int, *, running: bool = False) -> Iterator[subprocess.Popen[str]]:
    """A child process holding the environment's lock for the block; killed (SIGKILL) at its end,
    if the block has not killed it."""
    args = [sys.executable, HOLDER, db_url, str(environment_id), *(["--running"] if running else [])]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        said = proc.stdout.readline().strip()
        if said != "held":
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"the lock holder said {said!r}: {err[-2000:]}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL: the holder gets no chance to release anything."""
    proc.kill()
    proc.wait(10)


def _main(argv: list[str]) -> int:
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from syncd.dataverse import db
    from syncd.dataverse.schema import SyncRun
    from syncd.service.locks import locks_for

    url, environment_id = argv[0], int(argv[1])
    engine = db.make_engine(url)
    with locks_for(engine).hold(environment_id) as held:
        if not held:
            print("busy", flush=True)
            return 3
        if "--running" in argv[2:]:
            with Session(engine) as session, session.begin():
                session.add(
                    SyncRun(
                        environment_id=environment_id,
                        kind="full",
                        requested_kind="full",
                        trigger="cli",
                        started_at=datetime.now(UTC),
                        outcome="running",
                    )
                )
        print("held", flush=True)
        while True:
            time.sleep(60)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
