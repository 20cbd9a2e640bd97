"""User-facing input errors.

Every problem with a user's files is raised as :class:`InputError` with a message that names the
file, says what is wrong and how to fix it. Command-line entry points print these messages without
a traceback (see :func:`exit_on_input_error`).
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


class InputError(ValueError):
    """Bad or missing input data, with a message meant for the user."""


def exit_on_input_error(main: F) -> F:
    """Decorate a console entry point so an :class:`InputError` prints its message and exits with code 2."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except InputError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def install_excepthook() -> None:
    """Make an uncaught :class:`InputError` print as one message instead of a traceback.

    Called when nerfstudio loads the plugin, so ``ns-train`` & co. report bad input data the way our
    own commands do. Other exceptions keep their tracebacks.
    """
    previous = sys.excepthook
    if getattr(previous, "_hfavatar", False):
        return

    def hook(kind, value, traceback):
        if issubclass(kind, InputError):
            print(f"error: {value}", file=sys.stderr)
        else:
            previous(kind, value, traceback)

    hook._hfavatar = True  # type: ignore[attr-defined]
    sys.excepthook = hook
