"""The API reference at `/schema`: plain HTML rendered on the server from the OpenAPI document.

A privacy product loads nothing from third parties: litestar's bundled renderers (Swagger UI,
Redoc, Scalar, …) fetch their scripts from CDNs and fonts from Google. This one needs no
script, no stylesheet and no font from anywhere: it is one self-contained page, readable with
a screen reader and without JavaScript. The machine-readable document stays at
`/schema/openapi.json` (and `.yaml`) for code generators and schemathesis.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, OpenAPIRenderPlugin, YamlRenderPlugin

_METHODS = ("get", "put", "post", "patch", "delete")
_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
h2{border-bottom:1px solid #ccc;margin-top:2.5rem}
.operation{border:1px solid #ddd;border-radius:4px;padding:.5rem 1rem;margin:1rem 0}
.method{font-weight:700;text-transform:uppercase;margin-right:.5rem}
code,pre{font-family:ui-monospace,monospace;font-size:13px}
pre{background:#f6f6f6;padding:.5rem;overflow:auto}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
"""


class _RenderedOnce(OpenAPIRenderPlugin):
    """The document never changes while the app runs, so each rendering is made once: YAML
    took about 0.2 s of CPU per request, on a route anyone may call."""

    _rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            self._rendered = self.render_fresh(request, openapi_schema)
        return self._rendered

    def render_fresh(
        self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]
    ) -> bytes:
        raise NotImplementedError


class _Json(_RenderedOnce, JsonRenderPlugin):
    def render_fresh(
        self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]
    ) -> bytes:
        return JsonRenderPlugin.render(self, request, openapi_schema)


class _Yaml(_RenderedOnce, YamlRenderPlugin):
    def render_fresh(
        self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]
    ) -> bytes:
        return YamlRenderPlugin.render(self, request, openapi_schema)


class PlainHtmlRenderPlugin(_RenderedOnce):
    """Serves the reference at `/schema` (and `/schema/docs`)."""

    def __init__(self) -> None:
        super().__init__(path=["/", "/docs"], favicon="", style="")

    def render_fresh(
        self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]
    ) -> bytes:
        return render_reference(openapi_schema).encode()


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """New plugins for each app (each keeps its own app's renderings)."""
    return [_Json(), _Yaml(), PlainHtmlRenderPlugin()]


def render_reference(document: dict[str, Any]) -> str:
    info = document.get("info", {})
    title = escape(str(info.get("title", "API")))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>{title} API reference</title><style>{_STYLE}</style></head><body>",
        f"<h1>{title} {escape(str(info.get('version', '')))}</h1>",
        f"<p>{escape(str(info.get('description', '')))}</p>",
        "<p>Machine-readable: <a href='openapi.json'>openapi.json</a>, "
        "<a href='openapi.yaml'>openapi.yaml</a>.</p>",
    ]
    components = document.get("components", {})
    parts.append(_security(components.get("securitySchemes", {})))
    for tag, operations in _by_tag(document.get("paths", {})).items():
        parts.append(f"<h2 id='tag-{escape(tag)}'>{escape(tag)}</h2>")
        parts += [_operation(method, path, operation) for method, path, operation in operations]
    schemas = components.get("schemas", {})
    if schemas:
        parts.append("<h2 id='schemas'>Schemas</h2>")
        for name, schema in sorted(schemas.items()):
            parts.append(f"<h3 id='schema-{escape(name)}'>{escape(name)}</h3>")
            parts.append(_json_block(schema))
    parts.append("</body></html>")
    return "\n".join(parts)


def _by_tag(paths: dict[str, Any]) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    grouped: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in paths.items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is not None:
                tag = (operation.get("tags") or ["other"])[0]
                grouped.setdefault(tag, []).append((method, path, operation))
    return grouped


def _security(schemes: dict[str, Any]) -> str:
    if not schemes:
        return ""
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(str(scheme.get('type', '')))} "
        f"{escape(str(scheme.get('scheme', scheme.get('name', ''))))}</td>"
        f"<td>{escape(str(scheme.get('description', '')))}</td></tr>"
        for name, scheme in schemes.items()
    )
    return (
        "<h2 id='credentials'>Credentials</h2><table><tr><th>Name</th><th>Kind</th>"
        f"<th>How</th></tr>{rows}</table>"
    )


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    anchor = escape(str(operation.get("operationId", f"{method}-{path}")))
    parts = [
        f"<section class='operation' id='{anchor}'>",
        f"<h3><span class='method'>{method}</span><code>{escape(path)}</code></h3>",
    ]
    if operation.get("summary"):
        parts.append(f"<p><strong>{escape(operation['summary'])}</strong></p>")
    if operation.get("description"):
        parts.append(f"<p>{escape(operation['description'])}</p>")
    security = [name for requirement in operation.get("security", []) for name in requirement]
    if security:
        parts.append(f"<p>Credentials: {escape(' or '.join(security))}</p>")
    parameters = operation.get("parameters", [])
    if parameters:
        rows = "".join(
            f"<tr><td><code>{escape(p.get('name', ''))}</code></td><td>{escape(p.get('in', ''))}"
            f"</td><td>{'yes' if p.get('required') else 'no'}</td>"
            f"<td>{escape(_type_of(p.get('schema', {})))}</td></tr>"
            for p in parameters
        )
        parts.append(
            "<table><tr><th>Parameter</th><th>In</th><th>Required</th><th>Type</th></tr>"
            f"{rows}</table>"
        )
    body = operation.get("requestBody", {}).get("content", {})
    for media_type, content in body.items():
        parts.append(f"<details><summary>Request body ({escape(media_type)})</summary>")
        parts.append(_json_block(content.get("schema", {})) + "</details>")
    for status, response in operation.get("responses", {}).items():
        description = escape(str(response.get("description", "")))
        schemas = [c.get("schema") for c in response.get("content", {}).values() if c.get("schema")]
        if schemas:
            parts.append(f"<details><summary>{escape(status)}: {description}</summary>")
            parts.append(_json_block(schemas[0]) + "</details>")
        else:
            parts.append(f"<p>{escape(status)}: {description}</p>")
    parts.append("</section>")
    return "\n".join(parts)


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if "oneOf" in schema or "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema.get("oneOf", schema.get("anyOf", [])))
    return str(schema.get("type", "any"))


def _json_block(schema: Any) -> str:
    text = escape(json.dumps(schema, indent=2, sort_keys=True, default=str))
    # a $ref becomes a link to the schema it names
    for name in _refs(schema):
        quoted = escape(json.dumps(f"#/components/schemas/{name}"))
        text = text.replace(quoted, f"<a href='#schema-{escape(name)}'>{quoted}</a>")
    return f"<pre>{text}</pre>"


def _refs(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[-1])
        for child in value.values():
            found |= _refs(child)
    elif isinstance(value, list):
        for child in value:
            found |= _refs(child)
    return found
