"""The error every command turns into one line on stderr and exit status 2."""


class UsageError(Exception):
    """Bad input found before any work; printed as one line, exit status 2."""
