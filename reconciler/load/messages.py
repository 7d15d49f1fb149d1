"""Short, human wording for values and schema keywords.

Used by ``schema_check`` (turning jsonschema errors into messages) and by the cross-file checks, so
that every message of a pass quotes values the same way (``'abc'``, ``12``, ``null``).
"""

from __future__ import annotations

from typing import Any

from reconciler.model.spec import ID_PATTERN

ID_PATTERNS = frozenset({ID_PATTERN, "^([A-Za-z0-9][A-Za-z0-9_.-]*)?$"})
"""The id pattern, and the design cell's "id or empty" variant."""

_TYPE_WORDS = {"object": "mapping", "array": "list"}


def show(value: Any, limit: int = 40) -> str:
    """A value as a message quotes it: ``'abc'``, ``12``, ``true``, ``null``, ``a mapping``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def type_names(value: Any) -> str:
    """``'integer'``; an optional field's ``null`` is left out (``'integer'`` for integer-or-null)."""
    names = [value] if isinstance(value, str) else list(value)
    if len(names) > 1 and "null" in names:
        names.remove("null")
    return " or ".join(f"'{_TYPE_WORDS.get(n, n)}'" for n in names)


def is_id_pattern(pattern: Any) -> bool:
    return pattern in ID_PATTERNS


def id_pattern_message(instance: Any, what: str = "id") -> str:
    return f"{show(instance)} is not a safe {what} (letters, digits, '_', '.', '-'; starting with a letter or digit)"


def describe(keyword: str, value: Any, instance: Any, *, name: bool = False) -> str:
    """Wording for one failed keyword; empty when there is no better one than jsonschema's."""
    if keyword == "pattern":
        return (
            id_pattern_message(instance, "name" if name else "id")
            if is_id_pattern(value)
            else (f"{show(instance)} does not match {value}")
        )
    if keyword == "enum":
        return f"{show(instance)} is not one of " + ", ".join(show(v) for v in value)
    if keyword == "const":
        return f"must be {show(value)}, not {show(instance)}"
    bounds = {
        "minimum": "at least",
        "maximum": "at most",
        "exclusiveMinimum": "greater than",
        "exclusiveMaximum": "less than",
    }
    if keyword in bounds:
        return f"{show(instance)} must be {bounds[keyword]} {show(value)}"
    if keyword in ("minItems", "minProperties", "minLength"):
        if value == 1:
            return "must not be empty"
        unit = {"minItems": "items", "minProperties": "keys", "minLength": "characters"}[keyword]
        return f"must have at least {value} {unit}"
    if keyword == "uniqueItems":
        return "has repeated items"
    if keyword == "type":
        return f"{show(instance)} is not of type {type_names(value)}"
    return ""
