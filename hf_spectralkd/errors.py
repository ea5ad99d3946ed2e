"""Exceptions the library raises for a user's mistake. The CLI prints them as one line, no traceback;
library code raises them without depending on the CLI."""


class UserError(Exception):
    """A mistake in the user's input: printed as one clear line, no traceback."""
