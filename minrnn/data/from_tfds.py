"""Tiny Shakespeare and D4RL MuJoCo read from TensorFlow Datasets (TFDS), without TensorFlow.

The readers give the same NumPy arrays as the file readers (`minrnn.data.shakespeare`,
`minrnn.data.d4rl.read_d4rl`) give for the same content. They read a dataset that is already
prepared on disk, through TFDS's random-access data sources (ArrayRecord, or Parquet), which
need neither TensorFlow nor a download; a dataset prepared as TFRecord (TFDS's default format)
is read through TensorFlow, where it is installed. Preparing a public dataset once
(`tfds build ... --file_format=array_record`) downloads it and, for these two datasets, runs
TensorFlow; the errors below say how.

Where prepared datasets live: `<tfds dir>/<dataset>/<config>/<version>/`. The TFDS directory is
the config's `data.tfds_dir` if given, else `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`
(TFDS's own default). Names are TFDS's: `tiny_shakespeare`,
`d4rl_mujoco_hopper/v2-medium-replay`, optionally with a version, `...:1.2.0` (default: the
newest version prepared there).

Tiny Shakespeare in TFDS (`tiny_shakespeare` 1.0.0) is Karpathy's `input.txt` cut in three
examples of one `text` feature each: `train` = the first `int(0.9 * n)` characters, `validation`
= the next `int(0.5 * rest)`, `test` = the remainder. So `train + validation + test` is the
file, character for character; TFDS's `train` is nanoGPT's training split, and nanoGPT's
validation split is TFDS's `validation + test`.

D4RL in TFDS (`d4rl_mujoco_<env>/v2-<dataset>` 1.2.0) is in RLDS form: one example per episode,
episodes cut where D4RL's terminal or timeout flag is set (as `split_trajectories` cuts).
TFDS's conversion adds a step after the last transition of an episode when the episode ended on
a terminal or the hdf5 file has `next_observations` (D4RL's v2 files have): it holds an
observation (the file's last `next_observations` row, or zeros), a zero action and reward,
discount 0, `is_last`, and `is_terminal` when the episode ended on a terminal. Without an added
step the last real step carries `is_last`.
An added step is the only step with `is_last` and discount 0 (real steps have discount 1, or 0
on the transition into a terminal, which is not `is_last`). The reader drops added steps and
puts the flags back on each episode's last transition:
  - `terminals`: the episode's last `is_terminal` (RLDS marks the state after the transition);
  - `timeouts`: set on the last transition of every episode that did not end on a terminal.
Two D4RL facts are not kept by TFDS and so cannot be read back: a final, unfinished trajectory
(no flag on the file's last row) reads as ended by a timeout, and a row with both flags reads
as a terminal only. `split_trajectories` gives the same trajectories either way.

TFDS stores episodes in the order of a hash of their generation keys (the episode's index for
D4RL); the reader restores the file's order from that hash, which TFDS keeps stable (changing it
would need a new major version of every dataset).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
from typing import Any, Iterable, Mapping

import numpy as np

TFDS_DIR_ENV = "TFDS_DATA_DIR"
TINY_SHAKESPEARE = "tiny_shakespeare"
TINY_SHAKESPEARE_SPLITS = ("train", "validation", "test")
# `minrnn.data.d4rl.D4RL_KEYS`, not imported: this module needs nothing of minrnn's.
D4RL_KEYS = ("observations", "actions", "rewards", "terminals", "timeouts")
_INSTALL_HINT = 'pip install "minrnn[tfds]"'
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")


def _import_tfds():
  try:
    import tensorflow_datasets as tfds  # Optional dependency (extra `tfds`).
  except ImportError as e:
    raise ImportError(
        f"Reading TFDS datasets needs tensorflow_datasets and array_record: {_INSTALL_HINT} "
        f"(TensorFlow itself is not needed).") from e
  return tfds


def tfds_dir(configured: str | os.PathLike | None = None) -> pathlib.Path:
  """The TFDS data directory: `configured`, else `$TFDS_DATA_DIR`, else `~/tensorflow_datasets`."""
  if configured:
    return pathlib.Path(configured).expanduser()
  if os.environ.get(TFDS_DIR_ENV):
    return pathlib.Path(os.environ[TFDS_DIR_ENV]).expanduser()
  return pathlib.Path("~/tensorflow_datasets").expanduser()


def d4rl_tfds_name(env: str, dataset: str) -> str:
  """TFDS's name of a D4RL MuJoCo v2 dataset, e.g. `("hopper", "medium_replay")` ->
  `d4rl_mujoco_hopper/v2-medium-replay`."""
  return f"d4rl_mujoco_{env}/v2-{dataset.replace('_', '-')}"


def _parse_version(text: str) -> tuple[int, ...]:
  return tuple(int(x) for x in text.split("."))


def find_prepared(name: str, directory: str | os.PathLike | None = None) -> pathlib.Path:
  """The folder of a prepared TFDS dataset, `<dir>/<dataset>[/<config>]/<version>`.

  Args:
    name: `dataset[/config][:version]`, e.g. `d4rl_mujoco_hopper/v2-medium:1.2.0`.
    directory: the TFDS data directory (None: see `tfds_dir`).

  Raises:
    FileNotFoundError: nothing prepared there; the message names the folder looked in and how
      to prepare the dataset.
  """
  root = tfds_dir(directory)
  base, _, version = name.partition(":")
  folder = root / base
  if version:
    candidates = [folder / version]
  else:
    candidates = sorted((p for p in folder.glob("*") if _VERSION.match(p.name)),
                        key=lambda p: _parse_version(p.name), reverse=True)
  for path in candidates:
    if (path / "dataset_info.json").exists():
      return path
  raise FileNotFoundError(
      f"TFDS dataset {name} is not prepared under {root}: no {folder}/"
      f"{version or '<version>'}/dataset_info.json.\n"
      f"Prepare it once (this downloads it; TFDS's builders for it need TensorFlow at this step "
      f"only): `tfds build {base} --file_format=array_record --data_dir={root}` (see TFDS's "
      f"guide to `tfds build`), or copy a prepared {base} into that directory. Point minrnn "
      f"at another directory with --config.data.tfds_dir=DIR or {TFDS_DIR_ENV}=DIR.")


def _data_source(name: str, split: str, directory, decoders=None):
  """A random-access source of one split's examples (decoded to NumPy), in file order, and the
  dataset's info."""
  tfds = _import_tfds()
  path = find_prepared(name, directory)
  # Built from the prepared files alone, not from TFDS's code for the dataset, which imports
  # TensorFlow for D4RL and may download.
  builder = tfds.builder_from_directory(str(path))
  if split not in builder.info.splits:
    raise ValueError(f"{path} has splits {sorted(builder.info.splits)}, not {split!r}.")
  formats = {str(getattr(f, "value", f)) for f in builder.info.available_file_formats()}
  if formats & {"array_record", "parquet"}:  # The formats TFDS reads at random, without TF.
    return builder.as_data_source(split, decoders=decoders), builder.info
  try:
    import tensorflow  # noqa: F401  Only TFRecord needs it.
  except ImportError:
    raise RuntimeError(
        f"{path} is prepared as {' and '.join(sorted(formats)) or 'tfrecord'}, which only "
        f"TensorFlow reads; TensorFlow is not "
        f"installed. Convert it to ArrayRecord (`tfds convert_format --dataset_version_dir="
        f"{path} --out_file_format=array_record`, or prepare it again with `tfds build "
        f"{name.partition(':')[0]} --file_format=array_record --data_dir=DIR`), or install "
        f"TensorFlow.") from None
  # One file after the other, unshuffled: the same order as the data source reads.
  read_config = tfds.ReadConfig(interleave_cycle_length=1)
  dataset = builder.as_dataset(split, decoders=decoders, shuffle_files=False,
                               read_config=read_config)
  return list(tfds.as_numpy(dataset)), builder.info


def _text(value: Any) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_tiny_shakespeare_splits(directory: str | os.PathLike | None = None,
                                 name: str = TINY_SHAKESPEARE) -> dict[str, str]:
  """TFDS's own splits of Tiny Shakespeare: `{"train": str, "validation": str, "test": str}`
  (90/5/5% of the characters, in order; see the module docstring)."""
  texts = {}
  for split in TINY_SHAKESPEARE_SPLITS:
    source, _ = _data_source(name, split, directory)
    if len(source) != 1:
      raise ValueError(f"TFDS {name} split {split} has {len(source)} examples; its builder "
                       f"writes the split's whole text as one example.")
    texts[split] = _text(source[0]["text"])
  return texts


def read_tiny_shakespeare_text(directory: str | os.PathLike | None = None,
                               name: str = TINY_SHAKESPEARE) -> str:
  """The whole text, `train + validation + test`: `input.txt` character for character, so
  `minrnn.data.shakespeare.split` of it is nanoGPT's 90/10 split, as from the file."""
  return "".join(read_tiny_shakespeare_splits(directory, name).values())


def tfds_key_order(num_examples: int, split: str) -> np.ndarray:
  """`(num_examples,)` int64: the generation key (0, 1, ...) of the example at each position of
  a TFDS split whose examples were keyed by their index. TFDS sorts a split's examples by the
  MD5 of the split's name followed by the key's decimal digits, as a 128-bit integer."""
  def rank(key: int) -> int:
    return int(hashlib.md5(f"{split}{key}".encode("utf-8")).hexdigest(), 16)
  return np.array(sorted(range(num_examples), key=rank), np.int64)


def episodes_to_d4rl(episodes: Iterable[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """D4RL's flat arrays from RLDS episodes as TFDS's D4RL builders write them.

  Args:
    episodes: in the file's order, each a dict of one episode's steps stacked:
      `observation (T, S)`, `action (T, A)`, `reward (T,)`, `discount (T,)`, `is_first`,
      `is_last`, `is_terminal` `(T,)` bool.

  Returns:
    `observations (N, S)` and `actions (N, A)` float32, `rewards (N,)` float32, `terminals` and
    `timeouts` `(N,)` bool: what `minrnn.data.d4rl.read_d4rl` returns (see the module docstring
    for the two flags TFDS does not keep).
  """
  parts = {k: [] for k in D4RL_KEYS}
  for i, steps in enumerate(episodes):
    is_last = np.asarray(steps["is_last"], bool)
    is_terminal = np.asarray(steps["is_terminal"], bool)
    discount = np.asarray(steps["discount"])
    n = len(is_last)
    if n == 0 or not is_last[-1] or is_last[:-1].any() or is_terminal[:-1].any():
      raise ValueError(f"Episode {i} is not laid out as TFDS's D4RL builders write episodes: "
                       f"is_last {is_last.tolist()}, is_terminal {is_terminal.tolist()}.")
    added = discount[-1] == 0  # The step TFDS added after the last transition.
    real = n - 1 if added else n
    if real == 0:
      raise ValueError(f"Episode {i} has no transition, only TFDS's added last step.")
    terminal = bool(is_terminal[-1])
    flags = np.zeros(real, bool)
    flags[-1] = True
    parts["observations"].append(np.asarray(steps["observation"], np.float32)[:real])
    parts["actions"].append(np.asarray(steps["action"], np.float32)[:real])
    parts["rewards"].append(np.asarray(steps["reward"], np.float32).reshape(n)[:real])
    parts["terminals"].append(flags if terminal else np.zeros(real, bool))
    parts["timeouts"].append(np.zeros(real, bool) if terminal else flags)
  if not parts["rewards"]:
    raise ValueError("No episodes.")
  return {k: np.concatenate(v) for k, v in parts.items()}


def read_d4rl_tfds(name: str, directory: str | os.PathLike | None = None,
                   split: str = "train") -> dict[str, np.ndarray]:
  """A TFDS D4RL MuJoCo dataset as the five flat arrays `minrnn.data.d4rl.read_d4rl` returns,
  in the hdf5 file's order (see `episodes_to_d4rl` for shapes and dtypes).

  Args:
    name: e.g. `d4rl_mujoco_hopper/v2-medium` (see `d4rl_tfds_name`), optionally `:version`.
    directory: the TFDS data directory (None: see `tfds_dir`).
    split: TFDS's only split of these datasets.
  """
  tfds = _import_tfds()
  # The steps come back as stored, one stacked array per feature: they are plain tensors,
  # stored as they decode. Decoding them one step at a time takes ~150 us a step, minutes for
  # D4RL's 1-2M steps; this way 1M steps take seconds.
  decoders = {"steps": tfds.decode.SkipDecoding()}
  source, info = _data_source(name, split, directory, decoders)
  if "steps" not in info.features:
    raise ValueError(f"TFDS {name} has features {list(info.features)}, not RLDS `steps`.")
  order = (np.arange(len(source)) if info.disable_shuffling
           else tfds_key_order(len(source), split))
  episodes = [None] * len(source)
  for position, key in enumerate(order):
    episodes[key] = source[position]["steps"]
  return episodes_to_d4rl(episodes)
