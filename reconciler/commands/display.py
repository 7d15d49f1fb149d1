"""Printing text from outside on the terminal: ``click.echo`` through ``termtext.terminal_safe``."""

from __future__ import annotations

import click

from reconciler.termtext import terminal_safe

__all__ = ["say", "terminal_safe"]


def say(text: str, *, err: bool = False) -> None:
    """``click.echo`` of ``terminal_safe`` text (line breaks kept)."""
    click.echo(terminal_safe(text, keep_newlines=True), err=err)
