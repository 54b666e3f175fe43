"""SIGTERM is acted on after the next step, whatever `train.log_every` is.

Python runs a signal handler between two bytecodes of the main thread, and the loop looks at the
request after every step; what can delay it is the loop running ahead of the device. On a GPU
nothing stops the host from queueing steps until it reads a result, which used to happen at the
next log only, so a signal was acted on up to `log_every` steps of device time later. The loop
now reads each step's `finite` flag while the next step runs: it is never more than one step
ahead of the device. (On a CPU the donated parameters already make each dispatch wait for the
step before, so this is checked on what the loop reads, not on a clock.)
"""

import numpy as np

from minrnn.training.loop import prepare


def test_the_loop_reads_each_step_before_it_runs_two_ahead(tiny_run, tmp_path):
  config = tiny_run("copy", num_steps=30)
  config.train.update(log_every=50, eval_every=30, checkpoint_every=30)
  run = prepare(config, tmp_path)
  train_step, dispatched, read, ahead = run.train_step, [], [0], []

  class Result:
    """A step's metric; reading one is what waits for the device to finish the step."""

    def __init__(self, step, value):
      self.step, self.value = step, value

    def __array__(self, dtype=None, copy=None):
      read.append(self.step)
      return np.asarray(self.value, dtype)

  def step_fn(*args):
    step = len(dispatched) + 1
    if max(read) < step - 2:
      ahead.append(step)
    params, opt_state, metrics, model_state = train_step(*args)
    dispatched.append(step)
    metrics = {name: Result(step, value) for name, value in metrics.items()}
    return params, opt_state, metrics, model_state
  run.train_step = step_fn
  result = run.train()
  assert result["step"] == 30 and dispatched == list(range(1, 31))
  assert not ahead, f"steps dispatched before the one two earlier was read: {ahead}"
  assert sorted(set(read[1:])) == list(range(1, 31))  # Every step is checked.
