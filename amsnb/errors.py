"""Errors a user can act on. Each message names the file, branch or parameter and says what to do."""


class AmsnbError(Exception):
    """Base class: an error whose message is meant for the analyst, not a traceback to debug."""


class InputFileError(AmsnbError, OSError):
    """A ROOT file is missing, not ROOT, corrupt, or lacks the tree or branches amsnb needs."""


class SchemaError(AmsnbError, ValueError):
    """Arrays do not match the amsnb schema (missing branch, wrong shape or dtype, NaN/inf values)."""


class ConfigError(AmsnbError, ValueError):
    """A parameter, profile, cut set or mapping file is invalid."""


class EmptySelectionError(AmsnbError, ValueError):
    """A selection left no events; the message says which step emptied it."""
