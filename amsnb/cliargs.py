"""Command-line conventions shared by every ``amsnb`` (sub)command: the core's, so the wings' ``cli_main`` use it too.

- ``--help`` shows each option's default (``ArgumentDefaultsHelpFormatter``) and exits 0;
- an argument error is one line on stderr (``amsnb simulate ecal: error: argument --n: -5 is not a positive
  integer (see --help)``) and exit status 2, before any work starts;
- value checks live in the argument types (:func:`positive_int`, ...), so they run while parsing.
"""

from __future__ import annotations

import argparse
import sys


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``(default: ...)`` after each option's help, except where there is nothing to say (a required option, a
    flag that is off, no default)."""

    def _get_help_string(self, action):
        if action.required or action.default in (None, False, [], argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the amsnb conventions: defaults in the help, one-line errors with exit status 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # argparse prints the whole usage first; one line is easier to read in a log
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def _number(kind, text: str, ok, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text} is not {what}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v > 0, "a positive integer")


def nonnegative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: v > 0 and v == v and v != float("inf"), "a positive number")


def nonnegative_float(text: str) -> float:
    return _number(float, text, lambda v: v >= 0 and v == v and v != float("inf"), "a number >= 0")
