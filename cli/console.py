"""The command line's output: messages on stderr, results on stdout, errors in one line."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

from salespulse.errors import Unavailable

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def say_error(error: BaseException) -> None:
    """One line: the message of an error a person can act on, else the error's type and first line."""
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if not isinstance(error, Unavailable):
        text = f"{type(error).__name__}: {text}".rstrip(": ")
    console.print(f"[red]error:[/] {escape(text)}")
