"""Check recorded HTTP exchanges against GitHub's published OpenAPI 3.0 description.

Owns: loading GitHub's description (`spec_path`) once per process, matching a request path to
its operation, and validating query parameter names, request bodies and response bodies (by status) with
`OAS30Validator` over a `referencing` registry of the whole file. It knows nothing about the fake's state.

Known differences between the description and the live API, handled here on purpose:
- `issues/add-labels` is described as an object with `labels`; GitHub also takes the bare JSON array that
  PyGithub sends, so a bare array is validated as `{"labels": [...]}`.
- `{ref}` in `/git/ref/{ref}` and `/git/refs/{ref}` is a ref name with slashes (`heads/gitbot/a/b`).
- Error statuses GitHub sends on every operation (401, and others not listed per operation) are
  validated against `basic-error`.
The description's own `example` values are never used: some of them fail its schemas.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from tests.shared import openapi_path, require

SPEC_URI = "urn:github:api.github.com.json"
_GREEDY_PARAMS = {"ref"}
_METHODS = ("get", "post", "put", "patch", "delete", "head")


def spec_path() -> Path:
    """GitHub's description: `$GITBOT_GITHUB_OPENAPI`, else `shared/github/api.github.com.json` beside the
    repository (the nearest ancestor's: a git worktree may sit one level deeper), else the copy fetched
    from its npm package (`tests.shared.openapi_path`)."""
    override = os.environ.get("GITBOT_GITHUB_OPENAPI")
    if override:
        return Path(override)
    return openapi_path()


@dataclass(frozen=True)
class Exchange:
    """One recorded request and its response; bodies are parsed JSON (None when empty)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    request_body: Any
    status: int
    response_body: Any
    request_headers: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    operation_id: str
    pattern: re.Pattern[str]
    spec: Mapping[str, Any]
    literal_length: int


def _compile(template: str) -> tuple[re.Pattern[str], int]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = ""
    literal = 0
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            regex += ".+" if name in _GREEDY_PARAMS else "[^/]+"
        else:
            regex += re.escape(part)
            literal += len(part)
    return re.compile(f"^{regex}$"), literal


class OpenAPIDescription:
    """GitHub's REST description: operations by path template and a validator for any schema in it."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"GitHub OpenAPI description not found at {path}")
        with open(path, encoding="utf-8") as handle:
            self.document: dict[str, Any] = json.load(handle)
        resource = Resource.from_contents(self.document, default_specification=DRAFT4)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self.operations: list[Operation] = []
        for template, item in self.document["paths"].items():
            pattern, literal = _compile(template)
            for method in _METHODS:
                if method in item:
                    op = item[method]
                    self.operations.append(Operation(method.upper(), template, op["operationId"], pattern, op, literal))

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation for `method path` (path without the API prefix); most literal match wins."""
        matches = [op for op in self.operations if op.method == method.upper() and op.pattern.match(path)]
        return max(matches, key=lambda op: op.literal_length, default=None)

    def resolve(self, node: Mapping[str, Any]) -> Mapping[str, Any]:
        """Follow a local `$ref` (responses, parameters) to its target object."""
        while "$ref" in node:
            pointer = str(node["$ref"]).removeprefix("#/")
            target: Any = self.document
            for key in pointer.split("/"):
                target = target[key.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def schema_errors(self, schema: Mapping[str, Any], instance: Any, where: str) -> list[str]:
        """Every violation of `schema` (a fragment of the description, `$ref`s resolved by the registry)."""
        wrapped = _anchor(schema)
        validator = OAS30Validator(wrapped, registry=self.registry, format_checker=oas30_format_checker)
        return [
            f"{where}: {'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
            for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.path)))
        ]

    def component(self, name: str) -> Mapping[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def validate(self, exchange: Exchange, prefix: str = "/api/v3") -> list[str]:
        """Problems with one exchange; empty when the request and response match the description."""
        path = exchange.path.removeprefix(prefix) or "/"
        label = f"{exchange.method} {path} -> {exchange.status}"
        op = self.operation(exchange.method, path)
        if op is None:
            return [f"{label}: no operation in the description"]
        return [
            *self._query_errors(op, exchange, label),
            *self._request_errors(op, exchange, label),
            *self._response_errors(op, exchange, label),
        ]

    def validate_all(self, exchanges: Iterable[Exchange], prefix: str = "/api/v3") -> list[str]:
        return [problem for exchange in exchanges for problem in self.validate(exchange, prefix)]

    def _parameters(self, op: Operation) -> Iterator[Mapping[str, Any]]:
        item = self.document["paths"][op.template]
        for param in [*item.get("parameters", []), *op.spec.get("parameters", [])]:
            yield self.resolve(param)

    def _query_errors(self, op: Operation, exchange: Exchange, label: str) -> list[str]:
        params = {p["name"]: p for p in self._parameters(op) if p.get("in") == "query"}
        problems = []
        for name, value in exchange.query:
            if name not in params:
                problems.append(f"{label}: query parameter {name!r} is not described")
                continue
            schema = params[name].get("schema", {})
            converted: Any = value
            if schema.get("type") == "integer" and value.lstrip("-").isdigit():
                converted = int(value)
            elif schema.get("type") == "boolean" and value in ("true", "false"):
                converted = value == "true"
            problems += self.schema_errors(schema, converted, f"{label} query {name}")
        return problems

    def _request_errors(self, op: Operation, exchange: Exchange, label: str) -> list[str]:
        body_spec = op.spec.get("requestBody")
        if exchange.request_body is None:
            if body_spec and self.resolve(body_spec).get("required"):
                return [f"{label}: request body is required"]
            return []
        if not body_spec:
            return [f"{label}: request has a body the operation does not take"]
        content = self.resolve(body_spec).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            return [f"{label}: request body is not described as application/json"]
        body = exchange.request_body
        if op.operation_id == "issues/add-labels" and isinstance(body, list):
            body = {"labels": body}
        return self.schema_errors(schema, body, f"{label} request")

    def _response_errors(self, op: Operation, exchange: Exchange, label: str) -> list[str]:
        responses = op.spec.get("responses", {})
        spec = responses.get(str(exchange.status)) or responses.get("default")
        if spec is None:
            if exchange.status >= 400:
                return self.schema_errors(self.component("basic-error"), exchange.response_body, f"{label} response")
            return [f"{label}: status {exchange.status} is not described for {op.operation_id}"]
        content = self.resolve(spec).get("content", {})
        schema = content.get("application/json", {}).get("schema")
        if schema is None:
            if exchange.response_body not in (None, b"", ""):
                return [f"{label}: response has a body the description does not have"]
            return []
        if exchange.response_body is None:
            return [f"{label}: response body is missing"]
        return self.schema_errors(schema, exchange.response_body, f"{label} response")


def _anchor(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite local `#/...` refs at the top so the registry resolves them inside the description."""
    text = json.dumps(schema)
    return dict(json.loads(text.replace('"$ref": "#/', f'"$ref": "{SPEC_URI}#/')))


@functools.cache
def load_description(path: Path | None = None) -> OpenAPIDescription:
    """The description, parsed once per process (the file is about 13 MB).

    Without it the calling test fails with one line naming it and how to get it.
    """
    if path is None and not os.environ.get("GITBOT_GITHUB_OPENAPI"):
        require("github")
    return OpenAPIDescription(path or spec_path())


@pytest.fixture(scope="session")
def github_openapi() -> OpenAPIDescription:
    return load_description()
