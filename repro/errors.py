"""Errors with a message that says what to do, shared by every layer (data readers, models, runs)."""


class DataError(RuntimeError):
    """A data set is missing, incomplete or corrupt; the message says how to fix it."""
