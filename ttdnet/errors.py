"""User-facing errors. The command line prints their message (no traceback) and exits with status 1."""


class TtdnetError(Exception):
    """An error caused by input the user controls: a file, a value, a missing weight. Says what and how to fix."""


class ConfigError(TtdnetError, ValueError):
    """A configuration file or value is invalid. The message names the key, the value and the fix.

    It is also a ``ValueError``, so library code that validates constructor arguments (a mask ratio, a layer
    index) raises it and stays catchable as one, while the command line prints it as one clear line.
    """
