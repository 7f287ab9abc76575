"""The one error every data path raises (its own module: readers and the loader both need it)."""


class DataError(RuntimeError):
    """A data set is missing, incomplete or corrupt; the message says how to fix it."""
