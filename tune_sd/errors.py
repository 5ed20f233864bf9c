"""The family of errors a user can cause.

Each one carries a message that says what is wrong and where (file, line, key). The CLI prints the
message in a line or two and exits with status 2; anything else is an internal failure (status 1).
"""


class UserError(Exception):
    """Base of every error caused by the user's input (config, library, data, study name)."""


class ConfigError(UserError):
    """A config key is unknown, has the wrong type, or is out of range."""


class LibraryError(UserError):
    """A function library file cannot be read or contains a refused expression."""


class DataError(UserError):
    """Input data is missing, unreadable, or inconsistent with the config."""


class StudyError(UserError):
    """A run cannot go on: unknown study, incompatible checkpoint, or the critic's loss became NaN."""


class StorageError(UserError):
    """A file or folder cannot be written: not a folder, read-only, full, or permission denied."""
