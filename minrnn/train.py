"""Trains a model from a config file; resumes automatically from its workdir.

    python -m minrnn.train --config configs/shakespeare.py:mingru --workdir runs/shakespeare \
        [--config.train.num_steps=1000 ...] [--accept_config_changes] [--verbose]
    python -m minrnn.train --config configs/enwik8.py:srupp --workdir runs/enwik8 --final_test

The part after `:` is the config file's variant, e.g. `configs/shakespeare.py:gru,cpu`; a
relative config path is found from the working directory or the repository. `--config.a.b=v`
overrides a setting. A mistake (an unknown setting, a missing data file, a changed config on
resume, a damaged checkpoint) is told in one message with exit status 2, and leaves the workdir
as it was. SIGTERM or Ctrl-C saves a checkpoint and exits with 128 + the signal's number; the
same command resumes. `--final_test` trains nothing: it scores the finished run's best
checkpoint under the config's `final_test` protocol (SRU++'s official test pass: one row, a long
unroll, the same-length attention mask) into `final_test.json` (`minrnn.training.final_test`).
From Python: `minrnn.train.train(config, workdir)` (`minrnn.training.loop.train`), with a
config from `minrnn.training.config.load_config`.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from minrnn import cli
from minrnn.training import distributed
from minrnn.training import final_test as final_test_lib
from minrnn.training.config import load_config
from minrnn.training.loop import prepare, summary, train
from minrnn.training.preemption import Preempted

__all__ = ["train"]


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  """`(arguments, config overrides "a.b=v")` of a command line."""
  parser = argparse.ArgumentParser(prog="python -m minrnn.train", description=__doc__.split(
      "\n\n")[0], epilog="Any --config.a.b=value overrides that setting.")
  parser.add_argument("--config", required=True, help="configs/<family>.py[:variant]")
  parser.add_argument("--workdir", required=True, help="the run's directory (resumed if it "
                      "holds checkpoints)")
  parser.add_argument("--accept_config_changes", action="store_true",
                      help="resume although settings changed (recorded in the workdir)")
  parser.add_argument("--final_test", action="store_true",
                      help="score the run's best checkpoint under the config's final_test "
                      "protocol into final_test.json; trains nothing")
  parser.add_argument("--verbose", action="store_true", help="tracebacks for every error")
  args, rest = parser.parse_known_args(argv)
  overrides, pending = [], None
  for arg in rest:
    if pending is not None:
      overrides.append(f"{pending}={arg}")
      pending = None
    elif arg.startswith("--config.") and "=" in arg:
      overrides.append(arg[len("--config."):])
    elif arg.startswith("--config."):
      pending = arg[len("--config."):]
    else:
      parser.error(f"unrecognized argument {arg!r}; settings are given as --config.a.b=value")
  if pending is not None:
    parser.error(f"--config.{pending} needs a value")
  return args, overrides


def main(argv: list[str]) -> int:
  args, overrides = parse(argv)
  cli.quiet_libraries()
  distributed.initialize()
  workdir = pathlib.Path(args.workdir)
  with cli.user_errors(args.verbose):
    config = load_config(args.config, overrides=overrides)
    if args.final_test:
      result = final_test_lib.final_test(config, workdir,
                                         accept_config_changes=args.accept_config_changes)
      print(final_test_lib.summary(result, workdir))
      return 0
    run = prepare(config, workdir, accept_config_changes=args.accept_config_changes)
  try:
    result = run.train()
  except Preempted as stop:
    print(stop, file=sys.stderr)
    return stop.exit_code
  if run.main_process:
    print(summary(result, workdir))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
