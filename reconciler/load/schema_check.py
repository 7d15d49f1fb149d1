"""Check a ``Document`` against the JSON Schema of its kind, collecting every error.

Second step of loading, after parsing. Each ``jsonschema`` error becomes a ``Problem`` with a short
message (``'abc' is not of type 'integer'``, ``unknown key 'comand'``, ``missing required key
'command'``) placed at the field, or at its nearest existing parent when the field is missing.
The result also says which parts of the document had errors, so that model building and cross-file
checks can still run on the clean parts and every problem is reported in one go.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from reconciler.errors import Problem
from reconciler.load.document import Document, JsonPath
from reconciler.load.fastschema import compile_schema
from reconciler.load.messages import describe, id_pattern_message, is_id_pattern, show, type_names
from reconciler.model.jsontext import bad_values, within
from reconciler.schemas import load_schema

if TYPE_CHECKING:  # jsonschema is imported on first use: a valid file never needs it (60 ms of a CLI start)
    from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped, unused-ignore]
    from jsonschema.protocols import Validator  # type: ignore[import-untyped, unused-ignore]


def _is_integer(_checker: object, value: object) -> bool:
    """Integers are ``int`` only: ``1.0`` is not an integer seed, and ``True`` is not a number."""
    return isinstance(value, int) and not isinstance(value, bool)


@cache
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with JSON Schema's (ECMA-262) meaning of ``$``: the end of the text.

    Python's ``$`` also matches before a final newline, so ``^[a-z]+$`` would accept ``"abc\n"``,
    an id that then breaks every path and command built from it. Every unescaped ``$`` outside a
    character class becomes ``\\Z``.
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            ch = r"\Z"
        out.append(ch)
        i += 1
    return re.compile("".join(out))


def _pattern(_validator: Any, pattern: str, instance: Any, _schema: Any) -> Iterator[ValidationError]:
    from jsonschema.exceptions import ValidationError

    if isinstance(instance, str) and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


@cache
def _strict_validator() -> Any:
    from jsonschema import Draft202012Validator, validators

    extend: Any = validators.extend  # untyped in types-jsonschema
    return extend(
        Draft202012Validator,
        validators={"pattern": _pattern},
        type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
    )


@cache
def validator_for(kind: str) -> Validator:
    """A (cached) validator for the schema of ``kind``."""
    validator: Validator = _strict_validator()(load_schema(kind))
    return validator


@dataclass(frozen=True)
class Checked:
    """A document with the outcome of its schema check."""

    doc: Document
    kind: str
    problems: tuple[Problem, ...]
    bad: frozenset[JsonPath]
    """Paths of the fields the errors are about (a missing or unknown key counts as its own path)."""

    @property
    def valid(self) -> bool:
        return not self.problems

    def clean(self, prefix: JsonPath = ()) -> bool:
        """No error at ``prefix``, below it, or at one of its parents."""
        n = len(prefix)
        return not any(p[:n] == prefix or prefix[: len(p)] == p for p in self.bad)


@cache
def fast_check_for(kind: str) -> Callable[[Any], bool] | None:
    """The compiled yes/no check of ``kind`` (``fastschema``), ``None`` when not compilable."""
    return compile_schema(load_schema(kind), ecma_regex)


def check(doc: Document, kind: str) -> Checked:
    """Validate ``doc`` against the schema of ``kind``; every error is reported. A document the
    compiled check accepts (the usual case) is not walked again by ``jsonschema``."""
    fast = fast_check_for(kind)
    if fast is not None and fast(doc.data) and within(doc.data):
        return Checked(doc, kind, (), frozenset())
    found: dict[tuple[JsonPath, str], JsonPath] = {}
    for error in validator_for(kind).iter_errors(doc.data):
        for path, message, at in _explain(error):
            found.setdefault((path, message), at)
    for path, message in bad_values(doc.data):  # NaN, 1e999, 2**64, deep nesting: in no schema
        found.setdefault((path, message), path)
    problems = tuple(sorted(doc.problem(path, message, at=at) for (path, message), at in found.items()))
    return Checked(doc, kind, problems, frozenset(path for path, _ in found))


def _explain(error: ValidationError) -> Iterator[tuple[JsonPath, str, JsonPath]]:
    """(field path, message, where to point) for one error; some errors name several fields."""
    from jsonschema.exceptions import best_match

    path: JsonPath = tuple(error.absolute_path)
    keyword = str(error.validator)
    value: Any = error.validator_value
    instance: Any = error.instance
    schema: Any = error.schema
    if keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
        allowed = sorted(schema.get("properties", {})) if isinstance(schema, dict) else []
        patterns = list(schema.get("patternProperties", {})) if isinstance(schema, dict) else []
        for key in instance:
            if key in allowed or any(ecma_regex(p).search(key) for p in patterns):
                continue
            hint = difflib.get_close_matches(key, allowed, n=1, cutoff=0.75)
            suffix = f" (did you mean '{hint[0]}'?)" if hint else ""
            yield (*path, key), f"unknown key '{key}'{suffix}", (*path, key)
        return
    if keyword == "required" and isinstance(instance, dict):
        for key in value:
            if key not in instance:
                yield (*path, key), f"missing required key '{key}'", path
        return
    if "propertyNames" in error.relative_schema_path and isinstance(instance, str):
        key_path = (*path, instance)
        yield key_path, describe(keyword, value, instance, name=True), key_path
        return
    if error.context:
        yield from _explain(best_match(error.context))
        return
    yield path, _message(keyword, value, instance, error.message), path


def _message(keyword: str, value: Any, instance: Any, fallback: str) -> str:
    if keyword == "type":
        return f"{show(instance)} is not of type {type_names(value)}"
    if keyword == "pattern" and is_id_pattern(value):
        return id_pattern_message(instance)
    text = describe(keyword, value, instance)
    return text if text else (fallback if len(fallback) <= 160 else fallback[:157] + "...")
