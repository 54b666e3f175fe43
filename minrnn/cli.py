"""What the command lines (`python -m minrnn.train`, `python -m minrnn.sample`) share: quiet
libraries, and known mistakes told in one short message with exit status 2 and no traceback
(`--verbose` or `MINRNN_VERBOSE=1` shows it)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import traceback

from minrnn.training.checkpointing import CheckpointError

# What a wrong config, a missing or damaged file or a bad argument raises before anything runs.
USER_ERRORS = (ValueError, TypeError, KeyError, OSError, CheckpointError)
USER_ERROR_STATUS = 2


def quiet_libraries() -> None:
  """Orbax logs every save at INFO through absl; keep the console to our own output."""
  from absl import logging as absl_logging
  absl_logging.set_verbosity(absl_logging.WARNING)
  logging.getLogger("absl").setLevel(logging.WARNING)


@contextlib.contextmanager
def user_errors(show_traceback: bool = False):
  """Turns the known mistakes raised inside into one message and exit status 2 (with the
  traceback too when `show_traceback` or `MINRNN_VERBOSE` is set)."""
  show_traceback = show_traceback or os.environ.get("MINRNN_VERBOSE", "") not in ("", "0")
  try:
    yield
  except USER_ERRORS as e:
    if show_traceback:
      traceback.print_exc()
    message = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    print(f"error: {message}", file=sys.stderr)
    if not show_traceback:
      print("(run with --verbose for the traceback)", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    # Straight out: an interrupted Orbax read would otherwise report its pending tasks at
    # interpreter shutdown, burying the message above.
    os._exit(USER_ERROR_STATUS)
