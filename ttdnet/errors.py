"""User-facing errors. The command line prints their message (no traceback) and exits non-zero."""


class TtdnetError(Exception):
    """An error caused by input the user controls: a file, a value, a missing weight. Says what and how to fix."""
