"""The mass-disable guard (pure), like Entra Connect's export deletion threshold."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GuardVerdict:
    allowed: bool
    reason: str | None = None


def check_disables(
    disables: int,
    enabled_before: int,
    *,
    max_count: int,
    max_ratio: float,
    allow: bool,
    directory_read_empty: bool = False,
) -> GuardVerdict:
    """Whether a run may apply `disables` disables of an environment that had `enabled_before` enabled users.

    A run over either threshold (more than `max_count` users, or more than `max_ratio` of the enabled
    users) is blocked unless `allow`. A run whose directory read came back empty never disables
    anyone, override or not: an empty answer is far likelier a fault than a tenant emptied.
    """
    if disables == 0:
        return GuardVerdict(True)
    if directory_read_empty:
        return GuardVerdict(
            False,
            f"the directory returned no users; {disables} disables withheld (an empty read never disables)",
        )
    over_count = disables > max_count
    over_ratio = enabled_before > 0 and disables > max_ratio * enabled_before
    if not (over_count or over_ratio) or allow:
        return GuardVerdict(True)
    share = f"{disables / enabled_before:.0%}" if enabled_before else "all"
    limit = f"{max_count} users or {max_ratio:.0%} of {enabled_before} enabled users"
    return GuardVerdict(
        False,
        f"the run would disable {disables} users ({share} of the enabled ones), over the threshold of {limit}; "
        "approve with `syncd sync ENV --allow-mass-disable`",
    )
