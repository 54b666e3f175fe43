"""What the command lines (`python -m minrnn.train`, `python -m minrnn.sample`, the experiment
scripts) share: quiet libraries, an argument parser whose mistakes (a bad or non-finite number
among them) are one line, and known mistakes told in one short message with exit status 2 and
no traceback (`--verbose` or `MINRNN_VERBOSE=1` shows it)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import traceback

from minrnn.training.checkpointing import CheckpointError

# What a wrong config, a missing or damaged file, a bad argument, a full disk or a missing
# optional dependency (ImportError: the `tfds` and `rl` extras) raises.
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, ImportError, CheckpointError)
USER_ERROR_STATUS = 2


def finite_float(text: str) -> float:
  """An argparse `type`: a float that is finite (`nan`, `inf` and `1e999` are refused)."""
  try:
    value = float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
  if not math.isfinite(value):
    raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
  return value


class ArgumentParser(argparse.ArgumentParser):
  """argparse's parser, with a mistake told in one line (exit status 2) instead of the usage."""

  def error(self, message: str):
    print(f"error: {self.prog}: {message} (see --help)", file=sys.stderr)
    sys.exit(USER_ERROR_STATUS)


def quiet_libraries() -> None:
  """Orbax logs every save at INFO through absl; keep the console to our own output."""
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("absl").setLevel(logging.WARNING)


@contextlib.contextmanager
def user_errors(show_traceback: bool = False, verbose_flag: str | None = "--verbose"):
  """Turns the known mistakes raised inside into one message and exit status 2 (with the
  traceback too when `show_traceback` or `MINRNN_VERBOSE` is set); the message says how to see
  the traceback (`verbose_flag`, the command's flag for it; None: it has none)."""
  show_traceback = show_traceback or os.environ.get("MINRNN_VERBOSE", "") not in ("", "0")
  try:
    yield
  except USER_ERRORS as e:
    if show_traceback:
      traceback.print_exc()
    message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    print(f"error: {message}", file=sys.stderr)
    if not show_traceback:
      print(f"(run with {verbose_flag or 'MINRNN_VERBOSE=1'} for the traceback)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # Straight out: an interrupted Orbax read would otherwise report its pending tasks at
    # interpreter shutdown, burying the message above.
    os._exit(USER_ERROR_STATUS)
