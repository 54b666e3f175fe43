"""Preemption: SIGTERM (a cluster taking the machine back) and SIGINT (Ctrl-C) stop a run
cleanly after the step in flight, with a checkpoint; a second signal exits at once."""

from __future__ import annotations

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Preempted(Exception):
  """The run stopped on a signal after saving a checkpoint at `step`."""

  def __init__(self, signum: int, step: int, directory: str):
    self.signum, self.step = signum, step
    self.exit_code = 128 + signum
    super().__init__(
        f"Stopped by {signal.Signals(signum).name} at step {step}; a checkpoint of that step is "
        f"in {directory}. Run the same command again to resume exactly where it stopped.")


class Preemption:
  """A context in which the signals above only ask the loop to stop (`requested`).

  Handlers are installed in the main thread only (Python delivers signals there); elsewhere
  the context does nothing.
  """

  def __init__(self):
    self.signum: int | None = None
    self._previous = {}

  @property
  def requested(self) -> bool:
    return self.signum is not None

  def _handle(self, signum, frame):
    del frame
    if self.signum is not None:
      os._exit(128 + signum)  # The second signal: no checkpoint, no cleanup.
    self.signum = signum
    print(f"\n{signal.Signals(signum).name}: saving a checkpoint after this step and stopping "
          "(send it again to exit at once).", file=sys.stderr, flush=True)

  def __enter__(self) -> "Preemption":
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
