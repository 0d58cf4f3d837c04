"""The HTML status page at `/`: environments, their user counts and last run, and recent runs.

Every value from the database is escaped; the page has no script and loads nothing else. An
outcome is coloured by its class: succeeded green, failed, interrupted and abandoned red, blocked amber, and
partial (the run finished, but some rows failed) purple. An environment in quarantine (see
`syncd.service.quarantine`) says `quarantined`, how many runs failed in a row and when its next
scheduled run may start, in bold brown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from syncd.service.quarantine import QuarantineState
from syncd.service.runs import EnvStatus

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:2em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}
.succeeded{color:#176f2c}.failed,.interrupted,.abandoned{color:#b00020}.blocked{color:#b36b00}
.partial{color:#6a3d9a;font-weight:bold}
.quarantined{color:#8b4000;font-weight:bold}
code{background:#f3f3f3;padding:0 .2em}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(rows_cell for rows_cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value: Any, cls: str | None = None) -> str:
    attr = f' class="{_e(cls)}"' if cls else ""
    return f"<td{attr}>{_e(value)}</td>"


def _quarantine_td(state: QuarantineState | None) -> str:
    if state is None or not state.consecutive_failures:
        return _td("-")
    failed = f"{state.consecutive_failures} failed in a row"
    if not state.quarantined:
        return _td(failed)
    when = state.as_dict()["next_attempt_at"]
    return _td(f"quarantined ({failed}; next scheduled run not before {when})", "quarantined")


def render(envs: Sequence[EnvStatus], recent: Sequence[dict[str, Any]], info: dict[str, Any]) -> str:
    env_rows = []
    for s in envs:
        run = s.last_run or {}
        outcome = run.get("outcome")
        env_rows.append(
            [
                _td(s.environment.name),
                _td(s.environment.type),
                _td("yes" if s.environment.has_database else "no"),
                _td(s.environment.security_group_id or "-"),
                _td(s.users.get("enabled", 0)),
                _td(s.users.get("disabled", 0)),
                _td(outcome or "never", outcome),
                _td(run.get("finished_at") or "-"),
                _td(s.last_success_at.isoformat() if s.last_success_at else "-"),
                _quarantine_td(s.quarantine),
            ]
        )
    run_rows = []
    for r in recent:
        c = r["counts"]
        run_rows.append(
            [
                _td(r["id"]),
                _td(r["environment"]),
                _td(r["kind"]),
                _td(r["trigger"]),
                _td(r["outcome"], r["outcome"]),
                _td(r["started_at"]),
                _td(r["duration_s"] if r["duration_s"] is not None else "-"),
                _td(c["read"]),
                _td(c["created"]),
                _td(c["updated"]),
                _td(c["enabled"]),
                _td(c["disabled"]),
                _td(c["failed"]),
                _td(r["error"] or ""),
            ]
        )
    facts = "".join(f"<li>{_e(k)}: <code>{_e(v)}</code></li>" for k, v in info.items())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=refresh content=10><title>syncd status</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>syncd</h1>"
        f"<ul>{facts}</ul>"
        "<h2>Environments</h2>"
        + _table(
            [
                "name",
                "type",
                "database",
                "security group",
                "enabled",
                "disabled",
                "last run",
                "finished",
                "last success",
                "quarantine",
            ],
            env_rows,
        )
        + "<h2>Recent runs</h2>"
        + _table(
            [
                "run",
                "environment",
                "kind",
                "trigger",
                "outcome",
                "started",
                "seconds",
                "read",
                "created",
                "updated",
                "enabled",
                "disabled",
                "failed",
                "error",
            ],
            run_rows,
        )
        + '<p>JSON: <a href="/api/environments">/api/environments</a>, <a href="/api/runs">/api/runs</a>; '
        '<a href="/metrics">/metrics</a></p></body></html>'
    )
