"""reconciler: a Git-native reconciler for ML research experiments.

The desired state lives in committed files of a research project (``config/reconciler.yaml``,
``dispatch/*.yaml``, ``experiments/*.json``); one pass loads it, observes every target with one
batched probe, plans with a pure function, applies, and commits the status files.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
