"""Errors a user can cause, each with its documented exit code.

Library functions raise these with a message that names the file; the CLI prints the
message on one line and exits with ``exit_code``. Programming errors are not caught.
"""

from __future__ import annotations

# Exit codes (documented in README.md). 2 is Typer's own code for bad command-line usage.
EXIT_OK = 0
EXIT_FAILURE = 1          # unexpected error (a bug): traceback shown
EXIT_USAGE = 2            # bad flags or arguments (Typer/Click)
EXIT_BAD_INPUT = 3        # unreadable, corrupt, truncated, empty or unsupported image
EXIT_NO_FACE = 4          # no face found in the photo
EXIT_NO_REFERENCE = 5     # no usable reference (none given, no face, eyes closed, other person)
EXIT_BAD_WEIGHTS = 6      # weights missing, invalid, or not matching their config/checksum
EXIT_OUTPUT = 7           # output exists (without --overwrite) or cannot be written
# 8 is not used (it was "command not built yet"): not reused, so old scripts never misread it
EXIT_BAD_DATA = 9         # a dataset folder is missing or has no usable faces
EXIT_SELF_CHECK = 10      # faces needed retouching but every result failed the self-check: nothing written


class ExganError(Exception):
    """Base class: an error caused by the user's input, reported as one line."""

    exit_code = EXIT_FAILURE


class BadInputError(ExganError):
    exit_code = EXIT_BAD_INPUT


class NoFaceError(ExganError):
    exit_code = EXIT_NO_FACE


class NoReferenceError(ExganError):
    exit_code = EXIT_NO_REFERENCE


class WeightsError(ExganError):
    exit_code = EXIT_BAD_WEIGHTS


class OutputError(ExganError):
    exit_code = EXIT_OUTPUT


class DataError(ExganError):
    exit_code = EXIT_BAD_DATA


class SelfCheckError(ExganError):
    exit_code = EXIT_SELF_CHECK
