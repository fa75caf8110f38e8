"""Errors the user can act on: `mlops` prints them without a traceback and exits 2."""
from __future__ import annotations


class CommandError(Exception):
    """A refusal or failure with a message that names the problem."""
