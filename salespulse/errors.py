"""Errors a person can act on: ``str()`` is one line that says what is wrong and what to do."""

from __future__ import annotations


class Unavailable(Exception):
    """Something the command or service needs is not there or not answering (a warehouse, a registry)."""
