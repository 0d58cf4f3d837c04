"""``GET /api/docs``: the admin API's OpenAPI document as one HTML page, rendered here.

The page is built from the document (``syncd.service.openapi.document``) by this module alone: no
script, no stylesheet or font from elsewhere, so it reads offline and in any browser. Every text
from the document is escaped. For each operation: its method and path, summary, whether it needs
the admin token, its parameters, its body and each status it answers with the schema of its body;
then every schema of ``components/schemas`` with its fields (name, type, required, description).
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em;max-width:70em;color:#222;line-height:1.4;overflow-wrap:break-word}
p,li,h3{overflow-wrap:anywhere}
h2{border-bottom:1px solid #ccc;margin-top:2em}
section.op{border:1px solid #ddd;border-radius:4px;padding:.5em 1em;margin:1em 0}
table{border-collapse:collapse;margin:.5em 0}
.scroll{overflow-x:auto;max-width:100%}
h3 code{overflow-wrap:anywhere}
th,td{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
code{background:#f3f3f3;padding:0 .2em;overflow-wrap:anywhere}
.method{font-weight:bold;text-transform:uppercase;margin-right:.5em}
.get{color:#176f2c}.post{color:#0b5cad}.put,.patch{color:#8b4000}.delete{color:#b00020}
.token{color:#8b4000}
"""


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[1]


def _type(schema: dict[str, Any]) -> str:
    """A schema's type, short, as HTML (a ``$ref`` is a link to its schema)."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return "one of " + ", ".join(f"<code>{_e(v)}</code>" for v in schema["enum"])
    if "const" in schema:
        return f"<code>{_e(schema['const'])}</code>"
    kind = schema.get("type")
    if kind == "array":
        return "array of " + _type(schema.get("items", {}))
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return "object of " + _type(schema["additionalProperties"])
    if kind is None:
        return "any"
    text = _e(kind)
    bounds = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "minLength", "pattern") if k in schema]
    return text + (f" ({_e(', '.join(bounds))})" if bounds else "")


_LITERAL = re.compile(r"``(.+?)``|`([^`]+)`")


def _prose(value: Any) -> str:
    """A description, escaped, its ``literal`` and `code` spans (as docstrings write them) as
    <code>."""
    return _LITERAL.sub(lambda m: f"<code>{m.group(1) or m.group(2)}</code>", _e(value))


def _table(headers: list[str], rows: str, label: str) -> str:
    """A table in a box that scrolls sideways on a narrow screen (the page itself never does); the
    box is a named region that takes the keyboard's focus, so it can be scrolled without a mouse."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return (
        f'<div class="scroll" role="region" tabindex="0" aria-label="{_e(label)}">'
        f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"
    )


def _parameters(params: list[dict[str, Any]], label: str) -> str:
    if not params:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(p['name'])}</code></td><td>{_e(p['in'])}</td>"
        f"<td>{_type(p.get('schema', {}))}</td><td>{'yes' if p.get('required') else 'no'}</td>"
        f"<td>{_prose(p.get('description', ''))}</td></tr>"
        for p in params
    )
    return _table(["parameter", "in", "type", "required", "description"], rows, label)


def _content(content: dict[str, Any]) -> str:
    return "; ".join(f"<code>{_e(media)}</code> {_type(c.get('schema', {}))}" for media, c in content.items())


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    token = '<p class="token">Needs the admin token.</p>' if op.get("security") else "<p>Needs no token.</p>"
    body = ""
    if "requestBody" in op:
        rb = op["requestBody"]
        body = f"<p>Body{'' if rb.get('required') else ' (optional)'}: {_content(rb['content'])}</p>"
    rows = "".join(
        f"<tr><td>{_e(status)}</td><td>{_prose(r.get('description', ''))}</td>"
        f"<td>{_content(r.get('content', {}))}</td></tr>"
        for status, r in op.get("responses", {}).items()
    )
    anchor = _e(op.get("operationId", f"{method}-{path}"))
    return (
        f'<section class="op" id="op-{anchor}"><h3><span class="method {_e(method)}">{_e(method)}</span>'
        f"<code>{_e(path)}</code></h3><p>{_prose(op.get('summary', ''))}</p>{token}"
        + _parameters(op.get("parameters", []), f"parameters of {method.upper()} {path}")
        + body
        + _table(["status", "meaning", "body"], rows, f"answers of {method.upper()} {path}")
        + "</section>"
    )


def _schema(name: str, schema: dict[str, Any]) -> str:
    doc = f"<p>{_prose(schema['description'])}</p>" if schema.get("description") else ""
    props = schema.get("properties")
    if not props:
        return f'<section id="schema-{_e(name)}"><h3>{_e(name)}</h3>{doc}<p>{_type(schema)}</p></section>'
    required = set(schema.get("required", ()))
    rows = "".join(
        f"<tr><td><code>{_e(field)}</code></td><td>{_type(prop)}</td>"
        f"<td>{'yes' if field in required else 'no'}</td><td>{_prose(prop.get('description', ''))}</td></tr>"
        for field, prop in props.items()
    )
    extra = schema.get("additionalProperties")
    more = ""
    if isinstance(extra, dict):
        more = f"<p>Other keys: {_type(extra)}.</p>"
    elif extra is not False:
        more = "<p>Other keys may appear.</p>"
    return (
        f'<section id="schema-{_e(name)}"><h3>{_e(name)}</h3>{doc}'
        + _table(["field", "type", "required", "description"], rows, f"fields of {name}")
        + f"{more}</section>"
    )


def render(document: dict[str, Any]) -> str:
    """The page for ``document`` (an OpenAPI 3.1 dict, as ``syncd.service.openapi.document`` builds)."""
    info = document.get("info", {})
    ops = "".join(
        _operation(path, method, op)
        for path, item in document.get("paths", {}).items()
        for method, op in item.items()
    )
    schemas = "".join(
        _schema(name, s) for name, s in sorted(document.get("components", {}).get("schemas", {}).items())
    )
    description = "".join(
        f"<p>{_prose(line)}</p>" for line in str(info.get("description", "")).split("\n") if line
    )
    title = f"{info.get('title', 'API')} {info.get('version', '')}".strip()
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body><main>"
        f"<h1>{_e(title)}</h1>{description}"
        f'<p>The machine-readable document: <a href="/api/openapi.json">/api/openapi.json</a> '
        f"(OpenAPI {_e(document.get('openapi', ''))}).</p>"
        f"<h2>Operations</h2>{ops}<h2>Schemas</h2>{schemas}</main></body></html>"
    )
