"""The lock on a run's directory: one process at a time trains (or scores) a run.

    with WorkdirLock(workdir):   # or lock.acquire() ... lock.release()
      ...                        # the only process writing into workdir

The lock is a file, `workdir/run.lock`, locked with `flock` and holding who took it (process id,
host, time, command). The kernel releases an `flock` when its process dies, however it dies, so
a lock file left by a killed process (`kill -9`, a lost machine) is recognised as stale and taken
over, with a note naming the process that left it. A second process finds the lock held and
raises `WorkdirInUse` naming the holder. The file is removed on release, so a run that is not
running holds no lock file. Acquiring creates the workdir if needed (and removes it again on a
release that follows a failure, when it created it): this is also the first check that the
workdir can be written at all, made before any slow preparation.

Filesystems without `flock` (some network filesystems) get a warning and no lock.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import logging
import os
import pathlib
import socket
import sys

LOCK_FILE = "run.lock"


class WorkdirInUse(OSError):
  """Another live process holds the lock on the workdir."""


def _holder_text() -> str:
  now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
  command = " ".join([os.path.basename(sys.executable), *sys.argv])[:300]
  return (f"pid {os.getpid()} on host {socket.gethostname()}, since {now} "
          f"({command})\n")


def _unwritable(path: pathlib.Path, error: OSError) -> OSError:
  """A one-line error for a workdir that cannot be created or written into."""
  if path.exists() and not path.is_dir():
    return NotADirectoryError(f"--workdir {path} is a file, not a directory; give the path of a "
                              "directory (it is created if missing).")
  reason = os.strerror(error.errno) if error.errno else str(error)
  return PermissionError(f"Cannot write into the workdir {path} ({reason}); choose a writable "
                         "--workdir.")


class WorkdirLock:
  """The lock on `workdir` (see the module docstring)."""

  def __init__(self, workdir: str | pathlib.Path):
    self.workdir = pathlib.Path(workdir)
    self.path = self.workdir / LOCK_FILE
    self._fd: int | None = None
    self._created: pathlib.Path | None = None  # The topmost folder this lock created.

  @property
  def held(self) -> bool:
    return self._fd is not None

  def acquire(self) -> None:
    """Takes the lock; raises `WorkdirInUse` if a live process holds it, or an OSError saying
    why the workdir cannot be written."""
    existed = self.workdir.exists()
    top = self.workdir
    while not top.parent.exists() and top.parent != top:
      top = top.parent
    try:
      self.workdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
      raise _unwritable(self.workdir, e) from None
    self._created = None if existed else top
    while True:
      try:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      except OSError as e:
        self._remove_created()
        raise _unwritable(self.workdir, e) from None
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "a process"
        os.close(fd)
        raise WorkdirInUse(
            f"{self.workdir} is in use by another run: {holder}. Wait for it to end or stop "
            f"it; two processes in one workdir would overwrite each other's checkpoints and "
            f"logs.") from None
      except OSError as e:
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
          os.close(fd)
          raise
        logging.warning("The filesystem of %s does not support file locks (%s): nothing stops "
                        "a second process from writing into this run.", self.workdir, e)
      # The file may have been removed by the holder's release between our open and lock:
      # then we locked a file that is no longer the lock, and try again.
      try:
        same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
      except FileNotFoundError:
        same = False
      if same:
        break
      os.close(fd)
    self._fd = fd
    stale = os.read(fd, 4096).decode(errors="replace").strip()
    if stale:
      print(f"Took over the lock of {self.workdir} left by a process that is gone ({stale}).",
            file=sys.stderr)
    os.lseek(fd, 0, os.SEEK_SET)
    os.ftruncate(fd, 0)
    os.write(fd, _holder_text().encode())
    os.fsync(fd)

  def _remove_created(self) -> None:
    if self._created is None:
      return
    for folder in [self.workdir, *self.workdir.parents]:
      try:
        folder.rmdir()  # Only empty folders: nothing of anyone's is lost.
      except OSError:
        break
      if folder == self._created:
        break
    self._created = None

  def release(self, *, failed: bool = False) -> None:
    """Releases the lock and removes its file; after a failure (`failed`), also the folders
    that `acquire` created, if they are still empty."""
    if self._fd is None:
      return
    try:
      self.path.unlink(missing_ok=True)
    finally:
      os.close(self._fd)
      self._fd = None
    if failed:
      self._remove_created()
    self._created = None

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, exc_type, *exc) -> None:
    self.release(failed=exc_type is not None)
