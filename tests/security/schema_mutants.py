"""Schema mutants: a valid payload of an action, built from its JSON schema, spoiled once.

`valid_payload` fills every property the schema names (optional ones too, so that each has
a place to be spoiled) with a value the schema allows. `mutants` is a Hypothesis strategy of
one spoiled copy and the OCPP error the mutation calls for:

| mutation | expected error |
| --- | --- |
| drop a required property | OccurenceConstraintViolation |
| a value of the wrong JSON type | TypeConstraintViolation |
| a string outside its enum | PropertyConstraintViolation |
| a string one or more characters over maxLength | PropertyConstraintViolation |
| a number below its minimum | PropertyConstraintViolation |
| a date-time that is not one | PropertyConstraintViolation |
| a property the schema does not name (additionalProperties false) | FormationViolation |

The schemas are read from the `ocpp` package, as the server reads them; the expectations
are the OCPP-J spec's, spelled per version by `OcppError.code_for`.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from csms.protocol.errors import (
    FormationViolation,
    OccurenceConstraintViolation,
    OcppError,
    PropertyConstraintViolation,
    TypeConstraintViolation,
)

_PACKAGES = {"ocpp1.6": "v16", "ocpp2.0.1": "v201"}
DATE = "2026-01-05T08:00:00Z"
BAD_DATES = [
    "yesterday",
    "2026-01-05",
    "2026-01-05 08:00:00Z",
    "2026-01-05T08:00:00",
    "05/01/2026 08:00",
    "2026-1-5T8:00:00Z",
    "2026-01-05T08:00:00+0100x",
    "",
]
Path = tuple[str | int, ...]


@functools.cache
def schema(version: str, action: str) -> dict[str, Any]:
    folder = importlib.resources.files("ocpp").joinpath(_PACKAGES[version], "schemas")
    for name in (f"{action}.json", f"{action}Request.json"):
        entry = folder.joinpath(name)
        if entry.is_file():
            loaded: dict[str, Any] = json.loads(entry.read_text())
            return loaded
    raise KeyError(f"no schema for {version} {action}")


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].removeprefix("#/definitions/")
        node = root["definitions"][name]
    return node


def _types(node: dict[str, Any]) -> list[str]:
    kind = node.get("type", "object" if "properties" in node else "string")
    return kind if isinstance(kind, list) else [kind]


def _value(root: dict[str, Any], node: dict[str, Any]) -> Any:
    node = _resolve(root, node)
    if "enum" in node:
        return node["enum"][0]
    kind = _types(node)[0]
    if kind == "object":
        return {name: _value(root, sub) for name, sub in node.get("properties", {}).items()}
    if kind == "array":
        return [_value(root, node["items"]) for _ in range(max(node.get("minItems", 1), 1))]
    if kind == "string":
        if node.get("format") == "date-time":
            return DATE
        return "v" * min(node.get("maxLength", 8), 8)
    if kind in ("integer", "number"):
        return int(node.get("minimum", 1))
    if kind == "boolean":
        return True
    raise ValueError(f"unexpected schema type {kind}")


def valid_payload(version: str, action: str) -> dict[str, Any]:
    root = schema(version, action)
    payload: dict[str, Any] = _value(root, root)
    return payload


@dataclass(frozen=True)
class Site:
    """A place in the payload, and what its schema says about it."""

    path: Path
    node: dict[str, Any]
    required: bool


def _sites(root: dict[str, Any], node: dict[str, Any], value: Any, path: Path) -> list[Site]:
    node = _resolve(root, node)
    found: list[Site] = []
    if isinstance(value, dict):
        required = set(node.get("required", ()))
        for name, sub in node.get("properties", {}).items():
            found.append(Site((*path, name), _resolve(root, sub), name in required))
            found.extend(_sites(root, sub, value[name], (*path, name)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_sites(root, node["items"], item, (*path, i)))
    return found


def _objects(root: dict[str, Any], node: dict[str, Any], value: Any, path: Path) -> list[Path]:
    """Paths of the objects that allow no property beyond those named."""
    node = _resolve(root, node)
    found: list[Path] = []
    if isinstance(value, dict):
        if node.get("additionalProperties") is False:
            found.append(path)
        for name, sub in node.get("properties", {}).items():
            found.extend(_objects(root, sub, value[name], (*path, name)))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found.extend(_objects(root, node["items"], item, (*path, i)))
    return found


def _parent(payload: Any, path: Path) -> tuple[Any, str | int]:
    for step in path[:-1]:
        payload = payload[step]
    return payload, path[-1]


_WRONG_BY_TYPE: dict[str, list[Any]] = {
    "string": [17, 0.5, True, None, [], {}],
    "integer": ["17", 0.5, True, None, [], {}],
    "number": ["1.5", True, None, [], {}],
    "boolean": ["true", 1, None, [], {}],
    "object": ["{}", 1, None, [], True],
    "array": ["[]", 1, None, {}, True],
}


@dataclass(frozen=True)
class Mutant:
    kind: str
    path: Path
    payload: dict[str, Any]
    expected: type[OcppError]

    def describe(self) -> str:
        return f"{self.kind} at {'/'.join(str(p) for p in self.path) or '(root)'}"


@st.composite
def mutants(draw: st.DrawFn, version: str, action: str) -> Mutant:
    root = schema(version, action)
    base = valid_payload(version, action)
    sites = _sites(root, root, base, ())
    options: list[tuple[str, Any]] = [("extra", p) for p in _objects(root, root, base, ())]
    for place in sites:
        if "type" in place.node:  # an untyped property (2.0.1's DataTransfer data) takes any
            options.append(("wrong-type", place))
        if place.required:
            options.append(("drop", place))
        if "enum" in place.node:
            options.append(("enum", place))
        if "maxLength" in place.node:
            options.append(("too-long", place))
        if "minimum" in place.node:
            options.append(("below-minimum", place))
        if place.node.get("format") == "date-time":
            options.append(("date", place))
    kind, where = draw(st.sampled_from(options))
    payload = copy.deepcopy(base)
    if kind == "extra":
        target = payload
        for step in where:
            target = target[step]
        # Every property the schema names is already there: any other key is extra.
        extra = draw(st.text(min_size=1, max_size=12).filter(lambda k: k not in target))
        target[extra] = draw(st.sampled_from([1, "x", None, {}, []]))
        return Mutant(kind, where, payload, FormationViolation)
    site: Site = where
    parent, key = _parent(payload, site.path)
    if kind == "drop":
        del parent[key]
        return Mutant(kind, site.path, payload, OccurenceConstraintViolation)
    if kind == "wrong-type":
        allowed = _types(site.node)
        wrong = [v for v in _WRONG_BY_TYPE[allowed[0]] if not any(_is_type(v, t) for t in allowed)]
        parent[key] = draw(st.sampled_from(wrong))
        return Mutant(kind, site.path, payload, TypeConstraintViolation)
    if kind == "enum":
        parent[key] = draw(st.text(max_size=20).filter(lambda s: s not in site.node["enum"]))
    elif kind == "too-long":
        parent[key] = "x" * (site.node["maxLength"] + draw(st.integers(1, 64)))
    elif kind == "below-minimum":
        parent[key] = site.node["minimum"] - draw(st.integers(1, 1000))
    else:
        parent[key] = draw(st.sampled_from(BAD_DATES))
    return Mutant(kind, site.path, payload, PropertyConstraintViolation)


def _is_type(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(
        value,
        {"string": str, "boolean": bool, "object": dict, "array": list, "null": type(None)}[kind],
    )
