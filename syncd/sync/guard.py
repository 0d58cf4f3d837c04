"""The mass-disable guard (pure), like Entra Connect's export deletion threshold."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuardVerdict:
    allowed: bool
    reason: str | None = None


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun`` in the grammatical number ``n`` asks for: "1 user", "2 users"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def check_disables(
    disables: int,
    enabled_before: int,
    *,
    max_count: int,
    max_ratio: float,
    ratio_min_count: int,
    allow: bool,
    directory_read_empty: bool = False,
) -> GuardVerdict:
    """Whether a run may apply `disables` disables of an environment that had `enabled_before` enabled users.

    `disables`, `enabled_before`, `max_count` and `ratio_min_count` are counts of users (>= 0);
    `max_ratio` is a share of `enabled_before` (0..1). A run is over the threshold when it would
    disable more than `max_count` users (a count, like Entra Connect's export deletion threshold, 500
    by default, and Entra provisioning's accidental-deletions threshold, set by an admin), or, when it would
    disable at least `ratio_min_count` users, more than `max_ratio` of the enabled ones (the floor
    keeps a small environment's routine leavers from being blocked: 1 of 4 is 25%). A run over the
    threshold is blocked unless `allow`. A run whose directory read came back empty never disables
    anyone, override or not: an empty answer is far likelier a fault than a tenant emptied.

    Returns a `GuardVerdict`; a blocked one's `reason` is a sentence for the run's error. Raises
    nothing. `enabled_before` may be a count stopped early (at `disables / max_ratio` + 1 or more)
    when that already shows the ratio is not crossed, or 0 when the ratio does not apply (a delta
    run under the floor and within the count does not count its enabled rows).
    """
    if disables == 0:
        return GuardVerdict(True)
    if directory_read_empty:
        return GuardVerdict(
            False,
            f"the directory returned no users; {_count(disables, 'disable')} withheld "
            "(an empty read never disables)",
        )
    over_count = disables > max_count
    ratio_applies = disables >= ratio_min_count
    over_ratio = ratio_applies and enabled_before > 0 and disables > max_ratio * enabled_before
    if not (over_count or over_ratio) or allow:
        return GuardVerdict(True)
    share = f"{disables / enabled_before:.0%}" if enabled_before else "all"
    limit = (
        f"{_count(max_count, 'user')}, or {max_ratio:.0%} of {_count(enabled_before, 'enabled user')} "
        f"for a run disabling at least {_count(ratio_min_count, 'user')}"
    )
    return GuardVerdict(
        False,
        f"the run would disable {_count(disables, 'user')} ({share} of the enabled ones), "
        f"over the threshold of {limit}; approve with `syncd sync ENV --allow-mass-disable`",
    )
