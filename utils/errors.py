"""The one error type for problems the user can fix (bad flags, missing or broken data)."""


class UserError(Exception):
    """Bad input, reported as `error: <message>` with exit status 2 and no traceback.

    The message is a single line that says what is wrong and, where possible, how to fix it.
    """
