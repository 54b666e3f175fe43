"""Small files in the real datasets' upstream formats, for tests (the real files are not here).

- enwik8: a zip holding `enwik8` (XML-like UTF-8 bytes, as in the dump);
- WikiText-103: `wikitext-103/wiki.{train,valid,test}.tokens` (tokenized lines, ` = Heading = `,
  `<unk>`, `@,@` number splits; every line starts with a space);
- D4RL: an hdf5 file with the keys `observations, actions, rewards, terminals, timeouts`
  (Hopper's sizes, so it can drive Hopper-v5 rollouts).
"""

from __future__ import annotations

import pathlib
import zipfile

import numpy as np

from minrnn.data import d4rl

ENWIK8_TEXT = ("<page>\n  <title>Zürich</title>\n  <text>[[Category:Cities]] &amp; 100 km²"
               "</text>\n</page>\n").encode()
WIKI_PARAGRAPH = (" The <unk> river runs 1 @,@ 200 km through the valley , and the town of "
                  "Oakfield lies on its north bank . Fishing and trade made the town rich .\n")
WIKI_SECTION = " \n = {title} = \n \n" + WIKI_PARAGRAPH + " \n = = History = = \n \n"
HOPPER_STATE_DIM, HOPPER_ACT_DIM = 11, 3


def write_enwik8(root: pathlib.Path, repeats: int = 40) -> pathlib.Path:
  """`root/enwik8/enwik8.zip` holding `repeats` copies of `ENWIK8_TEXT`; returns `root`."""
  (root / "enwik8").mkdir(parents=True, exist_ok=True)
  with zipfile.ZipFile(root / "enwik8" / "enwik8.zip", "w") as archive:
    archive.writestr("enwik8", ENWIK8_TEXT * repeats)
  return root


def write_wikitext103(root: pathlib.Path, train_titles: int = 12,
                      paragraphs: int = 2) -> pathlib.Path:
  """`root/wikitext-103/wiki.*.tokens`, sections of `paragraphs` paragraphs; returns `root`."""
  folder = root / "wikitext-103"
  folder.mkdir(parents=True, exist_ok=True)
  titles = {"train": ["Alpha", "Beta", "Gamma"] * (train_titles // 3), "valid": ["Delta"],
            "test": ["Alpha"]}
  for split, names in titles.items():
    body = "".join(WIKI_SECTION.format(title=t) + WIKI_PARAGRAPH * paragraphs for t in names)
    (folder / f"wiki.{split}.tokens").write_text(body, encoding="utf-8")
  return root


def write_d4rl_file(path: pathlib.Path, n: int = 60, terminals=(19, 44), timeouts=(29,),
                    rewards: np.ndarray | None = None, seed: int = 0) -> dict[str, np.ndarray]:
  """A D4RL-format hdf5 file of `n` Hopper-sized transitions; returns what it wrote."""
  rng = np.random.default_rng(seed)
  data = {"observations": rng.normal(2.0, 3.0, size=(n, HOPPER_STATE_DIM)).astype(np.float32),
          "actions": rng.uniform(-1, 1, size=(n, HOPPER_ACT_DIM)).astype(np.float32),
          "rewards": (rng.uniform(0, 2, size=n) if rewards is None else rewards
                      ).astype(np.float32),
          "terminals": np.zeros(n, bool), "timeouts": np.zeros(n, bool)}
  data["terminals"][list(terminals)] = True
  data["timeouts"][list(timeouts)] = True
  path.parent.mkdir(parents=True, exist_ok=True)
  d4rl.write_d4rl(path, data)
  return data


def write_all(root: pathlib.Path, shakespeare: pathlib.Path) -> pathlib.Path:
  """Every fixture under the data directory `root`, with Tiny Shakespeare copied from the
  real data directory `shakespeare`; returns `root`."""
  (root / "tinyshakespeare").mkdir(parents=True, exist_ok=True)
  text = (shakespeare / "tinyshakespeare" / "input.txt").read_text()
  (root / "tinyshakespeare" / "input.txt").write_text(text)
  write_enwik8(root)
  write_wikitext103(root)
  write_d4rl_file(root / "d4rl" / "hopper_medium-v2.hdf5")
  return root
