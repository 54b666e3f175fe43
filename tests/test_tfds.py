"""TFDS readers: the same arrays as the file readers, from datasets prepared here as ArrayRecord.

The datasets are prepared by TFDS's own builders for `tiny_shakespeare` and
`d4rl_mujoco_hopper` (subclassed only to read a local file instead of downloading), so the
splits, episode layout and example order are TFDS's. Those builders touch TensorFlow for a few
things while preparing (opening files, naming dtypes); a stand-in supplies them, and nothing
imports TensorFlow.
"""

import importlib
import json
import os
import pathlib
import sys
import types

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")
pytest.importorskip("array_record")
h5py = pytest.importorskip("h5py")

from minrnn import train as train_lib  # noqa: E402
from minrnn.data import d4rl, from_tfds, shakespeare  # noqa: E402
from minrnn.tasks import make_task  # noqa: E402
from minrnn.training.metrics import read_metrics  # noqa: E402

_NO_GCS = tfds.download.DownloadConfig(try_download_gcs=False)
# What TFDS's tiny_shakespeare and D4RL builders use from TensorFlow while preparing.
_TF_STAND_IN = types.SimpleNamespace(
    bool=np.bool_, string=np.object_, int32=np.int32,
    io=types.SimpleNamespace(gfile=types.SimpleNamespace(GFile=open, isdir=os.path.isdir)))


@pytest.fixture
def no_tensorflow(monkeypatch):
  for module in ("tensorflow_datasets.d4rl.dataset_builder",
                 "tensorflow_datasets.d4rl.dataset_utils",
                 tfds.builder_cls("tiny_shakespeare").__module__):
    monkeypatch.setattr(importlib.import_module(module), "tf", _TF_STAND_IN)


class _LocalDownloads:
  """Stands for TFDS's download manager: every URL is the one local file."""

  def __init__(self, path):
    self.path = str(path)

  def download(self, url):
    return self.path


class TinyShakespeare(tfds.builder_cls("tiny_shakespeare"), skip_registration=True):
  name = "tiny_shakespeare"
  input_path = None

  def _split_generators(self, dl_manager):
    return super()._split_generators(_LocalDownloads(self.input_path))


class D4rlMujocoHopper(tfds.builder_cls("d4rl_mujoco_hopper"), skip_registration=True):
  name = "d4rl_mujoco_hopper"
  hdf5_path = None

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples({"file_path": str(self.hdf5_path)})}


def _prepare(builder, **attributes):
  for key, value in attributes.items():
    setattr(builder, key, value)
  builder.download_and_prepare(download_config=_NO_GCS)
  return builder


# ----------------------------------------------------------------------------- Tiny Shakespeare

def _shakespeare_text():
  """The real `input.txt` where the data directory has it, else a stand-in of the same kind."""
  try:
    return shakespeare.load_text(download=False)
  except FileNotFoundError:
    speech = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
              "All:\nSpeak, speak.\n")
    return speech * 40


def test_tiny_shakespeare_splits_join_back_into_the_file(tmp_path, no_tensorflow):
  text = _shakespeare_text()
  (tmp_path / "input.txt").write_text(text, encoding="ascii")
  _prepare(TinyShakespeare(data_dir=str(tmp_path / "tfds"), file_format="array_record"),
           input_path=tmp_path / "input.txt")

  splits = from_tfds.read_tiny_shakespeare_splits(tmp_path / "tfds")
  assert list(splits) == ["train", "validation", "test"]
  assert "".join(splits.values()) == text
  n = len(text)
  assert len(splits["train"]) == int(0.9 * n)
  assert len(splits["validation"]) == int(0.5 * (n - int(0.9 * n)))

  # The paper's (nanoGPT's) split of the joined text is the file's, array for array; its
  # training split is TFDS's, its validation split TFDS's validation and test together.
  vocab, train, val = shakespeare.split(from_tfds.read_tiny_shakespeare_text(tmp_path / "tfds"))
  file_vocab, file_train, file_val = shakespeare.split(text)
  assert vocab == file_vocab
  np.testing.assert_array_equal(train, file_train)
  np.testing.assert_array_equal(val, file_val)
  assert train.dtype == file_train.dtype == np.int32
  np.testing.assert_array_equal(vocab.encode(splits["train"]), file_train)
  np.testing.assert_array_equal(vocab.encode(splits["validation"] + splits["test"]), file_val)
  assert "tensorflow" not in sys.modules


# ----------------------------------------------------------------------------------------- D4RL

_STATE_DIM, _ACT_DIM = 11, 3  # Hopper's sizes, which its TFDS builder declares.


def _d4rl_data(n, terminals, timeouts, seed=0):
  rng = np.random.default_rng(seed)
  data = {
      "observations": rng.normal(size=(n, _STATE_DIM)).astype(np.float32),
      "actions": rng.uniform(-1, 1, size=(n, _ACT_DIM)).astype(np.float32),
      "rewards": rng.normal(size=n).astype(np.float32),
      "terminals": np.zeros(n, bool),
      "timeouts": np.zeros(n, bool),
  }
  data["terminals"][list(terminals)] = True
  data["timeouts"][list(timeouts)] = True
  return data


def _write_hdf5(path, data, builder, next_observations):
  """A D4RL v2 file: the five arrays (`write_d4rl`), and the per-step `infos/...` and
  per-file `metadata/...` that the builder's features declare, filled with stand-ins."""
  d4rl.write_d4rl(path, data)
  n = len(data["rewards"])
  features = builder.info.features
  with h5py.File(path, "a") as f:
    if next_observations:
      f["next_observations"] = data["observations"] + 1.0
    for key, info in _leaves(features["steps"].get_tensor_info().get("infos", {})):
      f[f"infos/{key}"] = np.zeros((n, *info.shape), info.numpy_dtype)
    episode_info = {k: v for k, v in features.get_tensor_info().items() if k != "steps"}
    for key, info in _leaves(episode_info):
      string = info.numpy_dtype == np.object_
      f[f"metadata/{key}"] = "stand-in" if string else np.zeros(info.shape, info.numpy_dtype)


def _leaves(tree, prefix=""):
  for key, value in tree.items():
    if isinstance(value, dict):
      yield from _leaves(value, f"{prefix}{key}/")
    else:
      yield f"{prefix}{key}", value


def _prepare_d4rl(tmp_path, data, config="v2-medium-replay", next_observations=True,
                  file_format="array_record"):
  builder = D4rlMujocoHopper(config=config, data_dir=str(tmp_path / "tfds"),
                             file_format=file_format)
  path = tmp_path / f"hopper_{config}.hdf5"
  _write_hdf5(path, data, builder, next_observations)
  _prepare(builder, hdf5_path=path)
  return path, f"d4rl_mujoco_hopper/{config}"


# Ten episodes: terminals and timeouts, one of length 1, and a flag on the last row.
_TERMINALS, _TIMEOUTS, _N = (3, 10, 20, 33), (9, 15, 26, 29, 39, 44), 45


@pytest.mark.parametrize("config,next_observations,file_format", [
    ("v2-medium-replay", True, "array_record"), ("v2-medium-replay", False, "array_record"),
    ("v2-medium", True, "array_record"), ("v2-medium", False, "array_record"),
    ("v2-medium-replay", True, "parquet")])
def test_d4rl_reads_as_the_hdf5_file(tmp_path, no_tensorflow, config, next_observations,
                                     file_format):
  data = _d4rl_data(_N, _TERMINALS, _TIMEOUTS)
  path, name = _prepare_d4rl(tmp_path, data, config, next_observations, file_format)
  # The test means something only if TFDS stored the episodes out of order.
  order = from_tfds.tfds_key_order(10, "train")
  assert sorted(order) == list(range(10)) and list(order) != list(range(10))

  got = from_tfds.read_d4rl_tfds(name, tmp_path / "tfds")
  want = d4rl.read_d4rl(path)
  assert set(got) == set(want) == set(d4rl.D4RL_KEYS)
  for key in d4rl.D4RL_KEYS:
    assert got[key].dtype == want[key].dtype and got[key].shape == want[key].shape, key
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  assert "tensorflow" not in sys.modules


def test_d4rl_flags_that_tfds_does_not_keep(tmp_path, no_tensorflow):
  # Row 9 has both flags; rows 40-44 are a final trajectory without a flag (unfinished).
  data = _d4rl_data(_N, _TERMINALS + (9,), (9, 15, 26, 29, 39))
  path, name = _prepare_d4rl(tmp_path, data)
  got, want = from_tfds.read_d4rl_tfds(name, tmp_path / "tfds"), d4rl.read_d4rl(path)

  changed = np.flatnonzero(got["timeouts"] != want["timeouts"])
  np.testing.assert_array_equal(changed, [9, _N - 1])
  assert not got["timeouts"][9] and got["timeouts"][_N - 1]
  for key in ("observations", "actions", "rewards", "terminals"):
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)
  # The trajectories are the same all the same.
  got_trajectories = d4rl.split_trajectories(got)
  want_trajectories = d4rl.split_trajectories(want)
  assert [(len(t), t.terminal) for t in got_trajectories] == [
      (len(t), t.terminal) for t in want_trajectories]
  for a, b in zip(got_trajectories, want_trajectories):
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.returns_to_go, b.returns_to_go)


def test_tfrecord_reads_the_same_where_tensorflow_is_installed(tmp_path):
  pytest.importorskip("tensorflow")
  data = _d4rl_data(_N, _TERMINALS, _TIMEOUTS)
  builder = D4rlMujocoHopper(config="v2-medium", data_dir=str(tmp_path / "tfds"),
                             file_format="tfrecord")
  _write_hdf5(tmp_path / "f.hdf5", data, builder, next_observations=True)
  _prepare(builder, hdf5_path=tmp_path / "f.hdf5")
  got = from_tfds.read_d4rl_tfds("d4rl_mujoco_hopper/v2-medium", tmp_path / "tfds")
  want = d4rl.read_d4rl(tmp_path / "f.hdf5")
  for key in d4rl.D4RL_KEYS:
    np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_d4rl_name_and_newest_version(tmp_path):
  name = from_tfds.d4rl_tfds_name("hopper", "medium_replay")
  assert name == "d4rl_mujoco_hopper/v2-medium-replay"
  for version in ("1.0.0", "1.10.0", "1.9.0"):
    folder = tmp_path / "d4rl_mujoco_hopper" / "v2-medium" / version
    folder.mkdir(parents=True)
    (folder / "dataset_info.json").write_text("{}")
  (tmp_path / "d4rl_mujoco_hopper" / "v2-medium" / "incomplete.x_2.0.0").mkdir()
  assert from_tfds.find_prepared("d4rl_mujoco_hopper/v2-medium", tmp_path).name == "1.10.0"
  assert from_tfds.find_prepared("d4rl_mujoco_hopper/v2-medium:1.0.0", tmp_path).name == "1.0.0"


# ------------------------------------------------------------------- training from the config

def _train(config, workdir):
  """`(training losses, final_eval.json)` of a short run of `config` in `workdir`."""
  result = train_lib.train(config, workdir)
  losses = [r["loss"] for r in read_metrics(workdir / "metrics.jsonl") if r["split"] == "train"]
  return losses, result


def test_shakespeare_trains_from_tfds_on_the_files_data(tmp_path, no_tensorflow, tiny_run):
  try:  # The files source checks input.txt's checksum: this needs the real file.
    text = shakespeare.load_text(download=False)
  except FileNotFoundError:
    pytest.skip("Tiny Shakespeare's input.txt is not in the data directory.")
  (tmp_path / "input.txt").write_text(text, encoding="ascii")
  _prepare(TinyShakespeare(data_dir=str(tmp_path / "tfds"), file_format="array_record"),
           input_path=tmp_path / "input.txt")
  config = tiny_run("shakespeare", num_steps=3)
  config.data.eval_batches = 1
  files_losses, files_result = _train(config, tmp_path / "files")
  config.data.update(source="tfds", tfds_dir=str(tmp_path / "tfds"), dir=None)
  tfds_losses, tfds_result = _train(config, tmp_path / "tfds_run")
  # The same text and the paper's split: the same batches, so the same losses.
  assert len(tfds_losses) == 3 and tfds_losses == files_losses
  assert tfds_result["eval"] == files_result["eval"]
  assert files_result["data"] == {"source": "files", "split": "nanogpt"}
  assert tfds_result["data"] == {"source": "tfds", "split": "nanogpt"}
  assert json.loads((tmp_path / "tfds_run" / "final_eval.json").read_text())["data"] == \
      tfds_result["data"]

  # TFDS's own split evaluates on its validation part: the first half of nanoGPT's.
  config.data.split = "tfds"
  task = make_task(config.data, config.seed)
  n = len(text)
  validation = text[int(0.9 * n):int(0.9 * n) + int(0.5 * (n - int(0.9 * n)))]
  assert task.decode(task.source.val_ids) == validation
  assert task.decode(task.source.train_ids) == text[:int(0.9 * n)]
  config.data.source = "files"
  with pytest.raises(ValueError, match="needs data.source='tfds'"):
    make_task(config.data, config.seed)
  assert "tensorflow" not in sys.modules


def test_d4rl_trains_from_tfds_on_the_files_data(tmp_path, no_tensorflow, tiny_run):
  path, name = _prepare_d4rl(tmp_path, _d4rl_data(_N, _TERMINALS, _TIMEOUTS), "v2-medium")
  config = tiny_run("d4rl", num_steps=3)
  config.data.update(dir=str(tmp_path), file=path.name)
  files_losses, files_result = _train(config, tmp_path / "files")
  assert config.data.tfds_name == name  # The config names the TFDS dataset of its variant.
  config.data.update(source="tfds", tfds_dir=str(tmp_path / "tfds"), dir=None)
  tfds_losses, tfds_result = _train(config, tmp_path / "tfds_run")
  assert len(tfds_losses) == 3 and tfds_losses == files_losses
  assert tfds_result["eval"] == files_result["eval"]
  assert tfds_result["data"]["source"] == f"tfds:{name}"
  assert files_result["data"]["source"] == str(path)
  assert "tensorflow" not in sys.modules


def test_an_unknown_data_source_is_named():
  with pytest.raises(ValueError, match=r"Unknown data source 'hdf5' \(data.source\)"):
    shakespeare.read_splits(source="hdf5")


# --------------------------------------------------------------------------------------- errors

def test_a_missing_dataset_says_where_and_how_to_prepare_it(tmp_path):
  with pytest.raises(FileNotFoundError) as error:
    from_tfds.read_d4rl_tfds("d4rl_mujoco_hopper/v2-medium", tmp_path)
  message = str(error.value)
  assert str(tmp_path / "d4rl_mujoco_hopper" / "v2-medium") in message
  assert "tfds build d4rl_mujoco_hopper/v2-medium --file_format=array_record" in message
  assert "data.tfds_dir" in message and "TFDS_DATA_DIR" in message


def test_the_tfds_directory_rule(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "env"))
  assert from_tfds.tfds_dir(tmp_path / "configured") == tmp_path / "configured"
  assert from_tfds.tfds_dir() == tmp_path / "env"
  monkeypatch.delenv("TFDS_DATA_DIR")
  assert from_tfds.tfds_dir() == pathlib.Path.home() / "tensorflow_datasets"


def test_tfrecord_without_tensorflow_says_how_to_convert(tmp_path, no_tensorflow, monkeypatch):
  # TFRecord cannot be written here without TensorFlow; a prepared dataset relabelled as one
  # takes the same way through the reader.
  text_path = tmp_path / "input.txt"
  text_path.write_text("To be, or not to be.\n" * 20, encoding="ascii")
  builder = _prepare(TinyShakespeare(data_dir=str(tmp_path / "tfds"),
                                     file_format="array_record"), input_path=text_path)
  info_path = pathlib.Path(builder.data_dir) / "dataset_info.json"
  info = json.loads(info_path.read_text())
  info["fileFormat"] = "tfrecord"
  info_path.write_text(json.dumps(info))
  monkeypatch.setitem(sys.modules, "tensorflow", None)  # Absent, even where installed.
  with pytest.raises(RuntimeError, match="tfrecord.*TensorFlow is not installed") as error:
    from_tfds.read_tiny_shakespeare_text(tmp_path / "tfds")
  assert "--out_file_format=array_record" in str(error.value)


def test_without_tensorflow_datasets_says_what_to_install(monkeypatch, tmp_path, capsys):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
  with pytest.raises(ImportError, match=r'pip install "minrnn\[tfds\]"'):
    from_tfds.read_tiny_shakespeare_text()

  def leave(status):
    raise SystemExit(status)
  monkeypatch.setattr(os, "_exit", leave)  # The command line's way out, caught here.
  with pytest.raises(SystemExit) as status:
    train_lib.main(["--config", "configs/shakespeare.py:mingru,cpu",
                    "--config.data.source='tfds'", "--workdir", str(tmp_path / "run")])
  assert status.value.code == 2
  first, *rest = capsys.readouterr().err.strip().splitlines()
  assert first.startswith("error: Reading TFDS datasets needs tensorflow_datasets") and len(rest) == 1
  assert not (tmp_path / "run").exists()


def test_episodes_that_are_not_tfds_d4rl_are_refused():
  steps = {"observation": np.zeros((2, 1)), "action": np.zeros((2, 1)), "reward": np.zeros(2),
           "discount": np.ones(2), "is_first": np.array([True, False]),
           "is_last": np.array([True, False]), "is_terminal": np.zeros(2, bool)}
  with pytest.raises(ValueError, match="not laid out"):
    from_tfds.episodes_to_d4rl([steps])
