#!/usr/bin/env bash
# Reproduce the MT50 policy (models/mt50) from scratch: collect the scripted experts of all
# 50 Meta-World v3 tasks (50 episodes per task, seeds 0-49), train, copy the best
# checkpoint, export, evaluate by the published protocol (50 episodes per task from seed
# 1000, training and held-out phrasings beside the expert). `make train-mt50` runs this
# and prints how long each part took.
#
# It takes longer than one working session on a 2-core machine (docs/mt50.md has the
# measured times): run it again after an interruption and every part continues where it
# stopped — bags already recorded are skipped, training resumes from its last save
# (`optim.checkpoint_every` saves inside long epochs), evaluation skips the tasks it
# finished.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${DATA:-data/mt50}
RUN=${RUN:-runs/mt50}
MODEL=${MODEL:-models/mt50}
EPISODES=${EPISODES:-50}
EVAL_EPISODES=${EVAL_EPISODES:-50}
WORKERS=${WORKERS:-2}

stamp() { date +%s; }
T0=$(stamp)
$BIN/hybrid-vla collect --suite mt50 --episodes "$EPISODES" --seed 0 --out "$DATA" --workers "$WORKERS"
T1=$(stamp)
if [ -e "$RUN/last" ]; then
  $BIN/hybrid-vla train --config config/train/mt50.yaml --data "$DATA" --out "$RUN" --resume
else
  $BIN/hybrid-vla train --config config/train/mt50.yaml --data "$DATA" --out "$RUN"
fi
T2=$(stamp)
mkdir -p "$MODEL"
cp "$RUN/best/config.yaml" "$RUN/best/model.safetensors" "$MODEL/"
$BIN/hybrid-vla export --checkpoint "$MODEL"
T3=$(stamp)
$BIN/hybrid-vla eval-sim --suite mt50 --checkpoint "$MODEL" --episodes "$EVAL_EPISODES" \
  --workers "$WORKERS" --out "$MODEL/eval"
T4=$(stamp)
echo "train-mt50 times: collection $(( (T1 - T0) / 60 )) min, training $(( (T2 - T1) / 60 )) min," \
     "export $(( (T3 - T2) / 60 )) min, evaluation $(( (T4 - T3) / 60 )) min;" \
     "$(( (T4 - T0) / 60 )) min in all (this run; parts done earlier were skipped)"
