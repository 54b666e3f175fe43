#!/usr/bin/env bash
# One GPU batch (about 4 minutes on an H100) for the results that need a GPU:
#   1. Shakespeare, minGRU and minLSTM at the paper's size (configs/shakespeare.py:mingru and :minlstm, evaluated
#      every 25 steps): the first SHAKESPEARE_STEPS (default 1500) of the configs' 5000-step
#      schedule, well past the paper's best steps (575 and 625); rerunning with
#      SHAKESPEARE_STEPS=5000 continues both runs to the end
#      -> experiments/results/shakespeare.{json,md,png};
#   2. the runtime figure at a few lengths (minGRU, minLSTM, GRU, LSTM, Mamba and cuDNN
#      GRU/LSTM through PyTorch) -> experiments/results/runtime.{json,md,png}.
# Each part runs on its own with a time limit and writes its results as it goes; a failing part
# does not stop the other. The result files and a log are also copied to $OUT (7 files).
#
#   OUT=/path/to/out PYTHONPATH=. bash experiments/gpu_batch.sh
#
# Needs ml_collections for the configs: when it is missing, a wheel in .whl/ is installed.
# The Tiny Shakespeare file is looked up by minrnn's data-directory rule: $MINRNN_DATA_DIR, else
# the first of shared/data, runs/data that holds tinyshakespeare/input.txt. Time limits per
# part (seconds): SHAKESPEARE_S (default 170), RUNTIME_S (default 70).
set +e
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:-.}"
OUT="${OUT:-runs/gpu_batch_out}"
mkdir -p "$OUT" experiments/results
LOG="$OUT/gpu_batch.log"
PY="${PYTHON:-python3}"
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  "$PY" -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
} >"$LOG" 2>&1

if ! "$PY" -c "import ml_collections" 2>/dev/null; then
  "$PY" -m pip install --no-deps --no-index .whl/ml_collections-*.whl >>"$LOG" 2>&1 \
    || echo "ml_collections is missing and no wheel was found in .whl/" >>"$LOG"
fi
if [ -z "$MINRNN_DATA_DIR" ]; then
  for dir in shared/data runs/data; do
    if [ -f "$dir/tinyshakespeare/input.txt" ]; then export MINRNN_DATA_DIR="$PWD/$dir"; break; fi
  done
fi
echo "MINRNN_DATA_DIR=${MINRNN_DATA_DIR:-unset}" >>"$LOG"

echo "== shakespeare $(date -u +%T)" >>"$LOG"
timeout "${SHAKESPEARE_S:-170}" "$PY" experiments/shakespeare/run.py --variant paper \
  --models mingru,minlstm --workdir runs/gpu_batch/shakespeare --eval_every 25 \
  --stop_at_step "${SHAKESPEARE_STEPS:-1500}" \
  --override data.download=False --override train.tensorboard=False >>"$LOG" 2>&1
echo "shakespeare exit $? $(date -u +%T)" >>"$LOG"

echo "== runtime $(date -u +%T)" >>"$LOG"
XLA_PYTHON_CLIENT_MEM_FRACTION=0.6 timeout "${RUNTIME_S:-70}" "$PY" experiments/runtime/run.py \
  --lengths 64,512,4096 --budget_s "$(( ${RUNTIME_S:-70} - 20 ))" >>"$LOG" 2>&1
echo "runtime exit $? $(date -u +%T)" >>"$LOG"

for f in experiments/results/shakespeare.{json,md,png} experiments/results/runtime.{json,md,png}; do
  [ -f "$f" ] && cp "$f" "$OUT/"
done
tail -n 30 "$LOG"
exit 0
