"""Read and validate the desired state: YAML/JSON with line numbers, JSON Schema, cross-file checks.

The load step of a pass, in order: ``sources`` (find, read, parse with positions: ``yamlpos``,
``jsonpos``; check each file: ``schema_check``), model building (``config``, ``specs``,
``records``), cross-file checks (``crossref``, ``paths``), then ``desired`` returns the
``DesiredState`` or raises ``SchemaError`` with every problem. ``state`` reads the recorded status.
Uses ``reconciler.model`` and ``reconciler.schemas`` only; never writes a file.
"""

from __future__ import annotations

from reconciler.load.desired import Report, Source, inspect, load_desired, validate
from reconciler.load.state import CorruptStateError, load_state, parse_state
from reconciler.load.tree import UnreadableFileError, WorkTree

__all__ = [
    "CorruptStateError",
    "Report",
    "Source",
    "UnreadableFileError",
    "WorkTree",
    "inspect",
    "load_desired",
    "load_state",
    "parse_state",
    "validate",
]
