"""A yes/no JSON Schema check compiled to closures, for the common case: a valid document.

``jsonschema`` walks a document through a generic validator, building a validator object per
descent; on a state file of 10,000 entries that took 2.7 s of the 5 s a ``reconcile validate``
took. Here a schema is compiled once into nested Python closures that answer only "valid or not"
(no error objects, no paths). ``schema_check.check`` asks this first and runs ``jsonschema`` only
for a document that fails it (to explain every problem, with its field and position) — so the
fast path must never accept what ``jsonschema`` refuses. It is exactly as strict because it
implements the same keywords with the same meaning as the strict validator of ``schema_check``
(``integer`` excludes ``bool`` and ``1.0``; ``pattern`` is searched with ECMA-262's ``$``), and a
schema that uses any keyword not listed in ``_SUPPORTED`` is not compiled at all (``None``:
``jsonschema`` checks every document of that kind). ``tests/load/test_fastschema.py`` holds the two
to the same verdict on every bad case of the test data and on generated documents.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Check = Callable[[Any], bool]

_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated", "readOnly",
     "writeOnly", "format", "$defs", "definitions"}
)  # fmt: skip
"""Keywords that assert nothing (``format`` is not asserted: the strict validator has no format checker)."""
_SUPPORTED = _ANNOTATIONS | {
    "type", "enum", "const", "properties", "required", "additionalProperties", "patternProperties",
    "propertyNames", "minProperties", "maxProperties", "items", "prefixItems", "minItems", "maxItems",
    "uniqueItems", "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
}  # fmt: skip


class Unsupported(Exception):
    """The schema uses something this compiler does not implement: use ``jsonschema``."""


def compile_schema(root: Mapping[str, Any], regex: Callable[[str], re.Pattern[str]]) -> Check | None:
    """A predicate equal to "``jsonschema`` finds no error" for documents of ``root``, or ``None``
    when the schema uses what is not implemented here. ``regex`` compiles a ``pattern`` keyword."""
    compiler = _Compiler(root, regex)
    try:
        return compiler.compile(root)
    except Unsupported:
        return None


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_number(v: Any) -> bool:
    t = type(v)
    return t is int or t is float


_TYPES: dict[str, Check] = {
    "null": lambda v: v is None,
    "boolean": lambda v: type(v) is bool,
    "integer": _is_int,
    "number": _is_number,
    "string": lambda v: type(v) is str,
    "array": lambda v: type(v) is list,
    "object": lambda v: type(v) is dict,
}


def _key(v: Any) -> Any:
    """A value as JSON Schema compares it: ``True`` is not ``1``, ``1.0`` is ``1``, lists and
    objects by content."""
    t = type(v)
    if t is bool:
        return ("bool", v)
    if t is int or t is float:
        return ("num", v)
    if t is list:
        return ("list", tuple(_key(x) for x in v))
    if t is dict:
        return ("dict", frozenset((k, _key(x)) for k, x in v.items()))
    return (t.__name__, v)


def _some(tests: tuple[Check, ...]) -> Check:
    return lambda v: any(t(v) for t in tests)


def _every(tests: tuple[Check, ...]) -> Check:
    return lambda v: all(t(v) for t in tests)


def _exactly_one(tests: tuple[Check, ...]) -> Check:
    return lambda v: sum(1 for t in tests if t(v)) == 1


def _member(allowed: frozenset[Any]) -> Check:
    return lambda v: _key(v) in allowed


class _Compiler:
    def __init__(self, root: Mapping[str, Any], regex: Callable[[str], re.Pattern[str]]) -> None:
        self.root = root
        self.regex = regex
        self.refs: dict[str, Check] = {}

    def ref(self, target: str) -> Check:
        if target in self.refs:
            return self.refs[target]
        if target != "#" and not target.startswith("#/"):
            raise Unsupported(target)
        node: Any = self.root
        for raw in target[2:].split("/") if target != "#" else ():
            part = raw.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, Mapping) or part not in node:
                raise Unsupported(target)
            node = node[part]
        slot: list[Check] = []

        def deferred(v: Any) -> bool:  # a recursive reference resolves through the slot
            return slot[0](v)

        self.refs[target] = deferred
        slot.append(self.compile(node))
        return deferred

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, Mapping):
            raise Unsupported(repr(schema))
        unknown = set(schema) - _SUPPORTED
        if unknown:
            raise Unsupported(", ".join(sorted(unknown)))
        checks: list[Check] = []
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not all(n in _TYPES for n in names):
                raise Unsupported(f"type {names}")
            tests = tuple(_TYPES[n] for n in names)
            checks.append(tests[0] if len(tests) == 1 else _some(tests))
        if "enum" in schema:
            checks.append(_member(frozenset(_key(x) for x in schema["enum"])))
        if "const" in schema:
            checks.append(_member(frozenset([_key(schema["const"])])))
        checks.extend(self._object(schema))
        checks.extend(self._array(schema))
        checks.extend(self._string(schema))
        checks.extend(self._number(schema))
        if "$ref" in schema:
            checks.append(self.ref(str(schema["$ref"])))
        if "allOf" in schema:
            checks.append(_every(tuple(self.compile(s) for s in schema["allOf"])))
        if "anyOf" in schema:
            checks.append(_some(tuple(self.compile(s) for s in schema["anyOf"])))
        if "oneOf" in schema:
            checks.append(_exactly_one(tuple(self.compile(s) for s in schema["oneOf"])))
        if "not" in schema:
            negated = self.compile(schema["not"])
            checks.append(lambda v: not negated(v))
        if "if" in schema:
            cond = self.compile(schema["if"])
            then = self.compile(schema.get("then", True))
            other = self.compile(schema.get("else", True))
            checks.append(lambda v: then(v) if cond(v) else other(v))
        if not checks:
            return lambda v: True
        return checks[0] if len(checks) == 1 else _every(tuple(checks))

    def _object(self, schema: Mapping[str, Any]) -> list[Check]:
        props = {k: self.compile(s) for k, s in (schema.get("properties") or {}).items()}
        patterns = [(self.regex(p), self.compile(s)) for p, s in (schema.get("patternProperties") or {}).items()]
        extra_schema = schema.get("additionalProperties", True)
        extra = None if extra_schema is True else self.compile(extra_schema)
        required = tuple(schema.get("required") or ())
        names = self.compile(schema["propertyNames"]) if "propertyNames" in schema else None
        low, high = schema.get("minProperties"), schema.get("maxProperties")
        if not (props or patterns or extra or required or names or low is not None or high is not None):
            return []

        def check(v: Any) -> bool:
            if type(v) is not dict:
                return True
            for key in required:
                if key not in v:
                    return False
            if low is not None and len(v) < low:
                return False
            if high is not None and len(v) > high:
                return False
            for key, value in v.items():
                sub = props.get(key)
                matched = sub is not None
                if sub is not None and not sub(value):
                    return False
                for pattern, psub in patterns:
                    if pattern.search(key):
                        matched = True
                        if not psub(value):
                            return False
                if not matched and extra is not None and not extra(value):
                    return False
                if names is not None and not names(key):
                    return False
            return True

        return [check]

    def _array(self, schema: Mapping[str, Any]) -> list[Check]:
        prefix = tuple(self.compile(s) for s in schema.get("prefixItems") or ())
        items = self.compile(schema["items"]) if "items" in schema else None
        low, high = schema.get("minItems"), schema.get("maxItems")
        unique = bool(schema.get("uniqueItems"))
        if not (prefix or items or low is not None or high is not None or unique):
            return []
        start = len(prefix)

        def check(v: Any) -> bool:
            if type(v) is not list:
                return True
            if low is not None and len(v) < low:
                return False
            if high is not None and len(v) > high:
                return False
            for sub, value in zip(prefix, v, strict=False):
                if not sub(value):
                    return False
            if items is not None:
                for value in v[start:]:
                    if not items(value):
                        return False
            return not unique or len({_key(x) for x in v}) == len(v)

        return [check]

    def _string(self, schema: Mapping[str, Any]) -> list[Check]:
        low, high = schema.get("minLength"), schema.get("maxLength")
        pattern = self.regex(schema["pattern"]) if "pattern" in schema else None
        if low is None and high is None and pattern is None:
            return []

        def check(v: Any) -> bool:
            if type(v) is not str:
                return True
            if low is not None and len(v) < low:
                return False
            if high is not None and len(v) > high:
                return False
            return pattern is None or pattern.search(v) is not None

        return [check]

    def _number(self, schema: Mapping[str, Any]) -> list[Check]:
        bounds = [(k, schema[k]) for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") if k in schema]
        multiple = schema.get("multipleOf")
        if not bounds and multiple is None:
            return []
        if multiple is not None:
            raise Unsupported("multipleOf")  # float semantics: leave it to jsonschema

        def check(v: Any) -> bool:
            if not _is_number(v):
                return True
            for keyword, bound in bounds:
                if keyword == "minimum" and v < bound:
                    return False
                if keyword == "maximum" and v > bound:
                    return False
                if keyword == "exclusiveMinimum" and v <= bound:
                    return False
                if keyword == "exclusiveMaximum" and v >= bound:
                    return False
            return True

        return [check]
