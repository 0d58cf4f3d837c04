"""What a row's sync decision was made from, as one 64-bit number (``systemuser.syncd_inputhash``).

The rules are pure (``decide(user, env, row)``): the same user facts, environment and row decide the
same thing. A run records, on each row it writes or leaves as it is, a hash of the user facts it
decided from, salted with the environment's facts and the code that decides. The database forgets
the hash on any other write to the row (migration 0006's trigger). So when a full run reads a user
whose hash equals the row's, the row is what this very decision left, and deciding again would
change nothing: the run skips the user without loading the row or calling the rules.

The hash is xxHash's XXH3 (64 bits) of the facts encoded as MessagePack (msgspec, with sets in a
fixed order), seeded with :func:`decision_salt`. A collision (two different inputs, one hash) would
leave one row unchanged for one run; at 64 bits that is about one chance in 10^19 per changed user.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import msgspec
import xxhash

from syncd.directory.models import Deletion, DirectoryUser
from syncd.rules import EnvironmentFacts, Membership

# The code whose change can change a decision: the rules, the licence catalogue they read, the
# directory's value types, column lengths (R10), and the planning that turns decisions into writes.
_DECIDING_CODE = (
    "rules/*.py",
    "directory/catalogue.py",
    "directory/models.py",
    "dataverse/lengths.py",
    "sync/plan.py",
    "sync/inputs.py",
)
_ENCODER = msgspec.msgpack.Encoder(order="deterministic")
_SIGN = 1 << 63
_WRAP = 1 << 64


@cache
def code_digest() -> bytes:
    """A digest of the source of the code that decides (``_DECIDING_CODE``), so that a new syncd,
    or any edit of a rule, decides every row again. Raises OSError if the sources cannot be read."""
    root = Path(__file__).resolve().parent.parent
    h = xxhash.xxh3_128()
    for pattern in _DECIDING_CODE:
        for path in sorted(root.glob(pattern)):
            h.update(path.relative_to(root).as_posix().encode())
            h.update(path.read_bytes())
    return h.digest()


def decision_salt(env: EnvironmentFacts, code: bytes) -> int:
    """The seed of every user's hash in one environment: its facts (name, type, security group,
    capacity, ...; a change to any decides every row again) and ``code`` (:func:`code_digest`)."""
    return xxhash.xxh3_64_intdigest(_ENCODER.encode(env) + code)


def input_hash(
    user: DirectoryUser | None,
    deletion: Deletion,
    roles: frozenset[str],
    membership: Membership,
    azurestate: int,
    salt: int,
) -> int:
    """The signed 64-bit hash (a BIGINT) of the facts one user's decision is made from: what the
    rules read of the user (``UserFacts`` but the object id, which the row is found by: the
    directory user or None, the deletion state, directory role template ids, relation to the
    security group) and the azurestate the run writes (R9). ``salt``: :func:`decision_salt`."""
    value = xxhash.xxh3_64_intdigest(_ENCODER.encode((user, deletion, roles, membership, azurestate)), salt)
    return value - _WRAP if value >= _SIGN else value
