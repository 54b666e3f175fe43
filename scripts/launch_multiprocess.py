"""Starts N copies of a command as the processes of one `jax.distributed` run on this machine.

    python scripts/launch_multiprocess.py --num_processes 2 --cpu_devices_per_process 4 -- \
        python -m minrnn.train --config configs/shakespeare.py:mingru,cpu --workdir runs/dp

Each copy gets `JAX_COORDINATOR_ADDRESS` (127.0.0.1 and a free port), `JAX_NUM_PROCESSES` and
`JAX_PROCESS_ID`, which `minrnn.training.distributed.initialize()` reads. With
`--cpu_devices_per_process K` each process runs on K CPU devices (JAX_PLATFORMS=cpu and XLA's
host device count): a multi-host run rehearsed on one machine. Output lines are prefixed with
the process id; if one process fails or the timeout passes, the others are stopped.

On a cluster, start one process per host yourself with the same three variables (the
coordinator address is process 0's host), or let `initialize(cluster_detection=True)` read
them from SLURM or Open MPI.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Mapping, Sequence


def free_port() -> int:
  """A TCP port on the loopback interface that nothing listens on right now."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_env(process_id: int, num_processes: int, port: int | None,
                cpu_devices: int | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
  """The environment of process `process_id`: `base` (default: this one's) plus the variables
  of a distributed run (if `num_processes > 1`) and of a CPU device count (if given)."""
  env = dict(os.environ if base is None else base)
  if num_processes > 1:
    env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES=str(num_processes),
               JAX_PROCESS_ID=str(process_id))
  if cpu_devices is not None:
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={cpu_devices}"])
    env["JAX_PLATFORMS"] = "cpu"
  return env


def launch(command: Sequence[str], *, num_processes: int,
           cpu_devices_per_process: int | None = None, timeout: float | None = None,
           env: Mapping[str, str] | None = None, echo: bool = False) -> list[tuple[int, str]]:
  """Runs `command` as `num_processes` processes and waits for all of them.

  Args:
    command: the program and its arguments, the same for every process.
    num_processes: how many processes (1: a plain run, no coordinator).
    cpu_devices_per_process: run each on this many CPU devices (None: the platform default).
    timeout: seconds before every process still running is killed.
    env: the base environment (default: this process's).
    echo: print each output line as it comes, prefixed with `[process id]`.

  Returns:
    `(return code, combined stdout and stderr)` per process, in process-id order. A process
    stopped at the timeout, or because another one failed, has return code -9 (SIGKILL).
  """
  if num_processes < 1:
    raise ValueError(f"num_processes must be >= 1, got {num_processes}.")
  port = free_port() if num_processes > 1 else None
  procs = [
      subprocess.Popen(list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       env=process_env(i, num_processes, port, cpu_devices_per_process, env))
      for i in range(num_processes)
  ]
  outputs: list[list[str]] = [[] for _ in procs]

  def read(i: int) -> None:
    with procs[i].stdout as stream:
      for line in stream:
        outputs[i].append(line)
        if echo:
          print(f"[{i}] {line}", end="", flush=True)

  readers = [threading.Thread(target=read, args=(i,), daemon=True) for i in range(len(procs))]
  for reader in readers:
    reader.start()
  deadline = None if timeout is None else time.monotonic() + timeout
  # Poll all of them: one failing process leaves the others waiting on it forever.
  while any(p.poll() is None for p in procs):
    failed = any(p.returncode not in (None, 0) for p in procs)
    if failed or (deadline is not None and time.monotonic() > deadline):
      for p in procs:
        if p.poll() is None:
          p.kill()
      break
    time.sleep(0.1)
  for p in procs:
    p.wait()
  for reader in readers:
    reader.join(timeout=5)
  return [(p.returncode, "".join(out)) for p, out in zip(procs, outputs)]


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   usage="%(prog)s [options] -- command ...")
  parser.add_argument("--num_processes", type=int, required=True)
  parser.add_argument("--cpu_devices_per_process", type=int, default=None,
                      help="run on this many CPU devices per process (for tests and rehearsal)")
  parser.add_argument("--timeout", type=float, default=None, help="seconds")
  parser.add_argument("command", nargs=argparse.REMAINDER)
  args = parser.parse_args(argv)
  command = args.command[1:] if args.command[:1] == ["--"] else args.command
  if not command:
    parser.error("give the command to run after --, e.g. -- python -m minrnn.train ...")
  results = launch(command, num_processes=args.num_processes,
                   cpu_devices_per_process=args.cpu_devices_per_process, timeout=args.timeout,
                   echo=True)
  codes = [code for code, _ in results]
  if any(codes):
    print(f"Process return codes: {codes}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
