"""Read the ``key: value`` lines of the seed's ``config/config.md`` (it has no parser of its own).

The file is loose markdown: settings such as ``project_name: my-proj`` at the top, then sections
with tables and prose. Lines may be list items or bold (``- **wandb_entity**: lab``); values may be
wrapped in backticks or quotes. Code fences and tables are skipped; the first value of a key wins.
"""

from __future__ import annotations

import re

_LINE = re.compile(r"^\s*(?:[-*+]\s+)?(?:\*\*|__)?`?(?P<key>[A-Za-z_][A-Za-z0-9_]*)`?(?:\*\*|__)?\s*:\s*(?P<value>.*)$")
_WRAPPERS = "`\"'*"


def parse_config_md(text: str) -> dict[str, str]:
    """The settings of a ``config.md``: lower-case key -> value (empty values are dropped)."""
    settings: dict[str, str] = {}
    in_fence = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
            continue
        if in_fence or stripped.startswith(("#", "|", ">")):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        key = match["key"].lower()
        value = match["value"].strip().strip(_WRAPPERS).strip()
        if value and key not in settings:
            settings[key] = value
    return settings
