"""Text from outside (a job's notes and output, a target's answers, a collaborator's spec) made safe
to print on a terminal.

Used by every command that prints such text (``status``, ``log``, ``plan``, a pass's events,
warnings and errors) and by ``watch``'s log. Control characters (ESC and the rest of C0, DEL,
C1) could move the cursor, rewrite earlier lines, set the window title or hide text;
bidirectional overrides and zero-width characters could make text read differently from what it
is. Each is shown as a visible escape (``\\x1b``, ``\\u202e``) instead. Rich markup is not
interpreted in such text: ``status`` puts it in ``rich.text.Text`` cells, so ``[bold]`` prints as
written.
"""

from __future__ import annotations

import re

_INVISIBLE = "\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2069\ufeff"
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f" + _INVISIBLE + "]")
_UNSAFE_KEEP_LINES = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f" + _INVISIBLE + "]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control or invisible formatting character shown as an escape; with
    ``keep_newlines``, ``\\n`` stays a line break (for messages of several lines)."""
    return (_UNSAFE_KEEP_LINES if keep_newlines else _UNSAFE).sub(_escape, text)
