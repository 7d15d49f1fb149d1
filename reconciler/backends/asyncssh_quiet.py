"""asyncssh, imported once without the warning newer `cryptography` releases raise on its import.

asyncssh still loads DSA key support, and cryptography 47+ warns ("DSA is deprecated") the moment
that module is imported. The warning is about a key type reconciler never offers or accepts, so a
user would see it on every command for nothing, and a test run (warnings are errors there) would
stop at collection. Every module that needs asyncssh imports it from here.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="DSA is deprecated")
    import asyncssh

__all__ = ["asyncssh"]
