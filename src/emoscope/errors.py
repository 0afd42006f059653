"""The one base class of every error a user can fix (bad input, bad option, missing file).

Library modules raise subclasses of :class:`EmoscopeError` with a message that says what was wrong, where,
and what to do; the CLI prints that message as one line (exit status 2) and the web server turns it into a
4xx answer, so neither needs to know each module's own error class.
"""

from __future__ import annotations


class EmoscopeError(Exception):
    """An error caused by the user's input or setup, with a message meant for that user."""


class InvalidArgumentError(EmoscopeError, ValueError):
    """A function or command was given an option value it cannot use (the message names the option and why)."""
