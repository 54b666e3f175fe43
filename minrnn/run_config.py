"""The config entries every run shares: the device mesh and the training loop's bookkeeping.

Each config file starts from `base_config()` and sets its own data, model and optimisation
settings (each with its source), so the keys no experiment tunes have one default.
"""

from ml_collections import config_dict

from minrnn import distributed


def base_config() -> config_dict.ConfigDict:
  """A config holding `mesh` and the loop's keys under `train` that are not hyper-parameters."""
  config = config_dict.ConfigDict()
  # The device mesh; `-1` takes the devices the other axes leave.
  config.mesh = config_dict.ConfigDict(distributed.MESH_DEFAULTS)
  config.train = config_dict.ConfigDict()
  config.train.stop_at_step = config_dict.placeholder(int)  # Stop early; resume later.
  config.train.keep_checkpoints = 3
  config.train.progress_bar = True
  config.train.tensorboard = True
  return config
