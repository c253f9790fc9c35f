"""The one error a user's request can raise below the command line: printed as one line, exit 2."""


class UserError(Exception):
    """A mistake in what the user asked for; printed as one line, exit status 2."""
