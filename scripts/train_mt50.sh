#!/usr/bin/env bash
# Reproduce the MT50 policy (models/mt50) from scratch, the way the shipped checkpoint was
# made: collect the scripted experts of all 50 Meta-World v3 tasks (50 episodes per task,
# seeds 0-49), 75 more episodes (seeds 50-124) of the fourteen tasks stage 3 adds and 75
# more (seeds 125-199) of the ten tasks stage 6 adds, train the twelve stages
# (config/train/mt50_stage{1,...,12}.yaml, each starting from the previous one's best
# weights; stage 4 reads instruction paraphrases, stage 5 switches the language input to
# per-token states, stage 6 averages the weights, stage 7 adds 20 episodes of each of
# sixteen tasks driven by the stage-6 policy and labelled by the expert: DAgger, seeds
# 300-319; its collection counts as training time below), stage 8 relabels disassemble
# (the revised expert's own 200 episodes, seeds 0-199, and 200 episodes the stage-7 policy
# drives, seeds 400-599, labelled by the revised expert; the protocol expert's disassemble
# episodes are left out) and adds 40 stage-7-driven, expert-labelled episodes of each of
# nineteen tasks (seeds 600-639), stage 9 adds 40 stage-8-driven, expert-labelled
# episodes of each of thirteen tasks (seeds 700-739), stage 10 adds 40 stage-9-driven,
# expert-labelled episodes of each of twelve tasks (seeds 800-839) and relabels
# plate-slide-back (the revised expert's own 100 episodes, seeds 0-99, and 40 the stage-9
# policy drives, seeds 800-839; the protocol-labelled ones are left out), stage 11 relabels
# pick-out-of-hole (the 40 stage-9-driven episodes, seeds 800-839, labelled by the revised
# expert) and basketball (the revised expert's own 125 episodes, seeds 0-124, and 40 the
# stage-9 policy drives, seeds 800-839; the protocol-labelled ones are left out), stage 12
# relabels peg-insert-side (the revised expert's own 200 episodes, seeds 0-199, the 40
# stage-9-driven ones and 40 the stage-11 policy drives, seeds 900-939) and adds 40
# stage-11-driven, expert-labelled episodes of each of four tasks (seeds 900-939), export,
# evaluate by the published protocol (50 episodes per task from seed 1000, training and held-out
# phrasings beside the expert).
# `make train-mt50` runs this and prints how long each part took.
#
# It takes longer than one working session on a 2-core machine (docs/mt50.md has the
# measured times): run it again after an interruption and every part continues where it
# stopped — bags already recorded are skipped, a stage resumes from its last save
# (`optim.checkpoint_every`), a finished stage is not trained again, evaluation skips the
# tasks it finished.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${DATA:-data/mt50}
EXTRA=${EXTRA:-data/mt50_extra}
EXTRA2=${EXTRA2:-data/mt50_extra2}
DAGGER=${DAGGER:-data/mt50_dagger}
# Stages 8 to 12 weight episodes by their bag paths (config/train/mt50_stage8.yaml: the
# protocol expert's disassemble under */mt50/*, */mt50_extra/*, */mt50_extra2/*, the
# revised expert's under */mt50_revised/*), so DATA, EXTRA and EXTRA2 keep their default
# directory names here; a rule that matches no bag stops the stage with its index.
REVISED=data/mt50_revised
REVISED_DAGGER=data/mt50_revised_dagger7
DAGGER8=data/mt50_dagger7
DAGGER9=data/mt50_dagger8
DAGGER10=data/mt50_dagger9
REVISED_PSB=data/mt50_revised_psb
REVISED_PSB_DAGGER=data/mt50_revised_psb_dagger9
REVISED_POOH_DAGGER=data/mt50_revised_pooh_dagger9
REVISED_BB=data/mt50_revised_bb
REVISED_BB_DAGGER=data/mt50_revised_bb_dagger9
REVISED_GRASP=data/mt50_revised_grasp
REVISED_PEG_DAGGER9=data/mt50_revised_peg_dagger9
REVISED_PEG_DAGGER11=data/mt50_revised_peg_dagger11
DAGGER12=data/mt50_dagger11
RUN=${RUN:-runs/mt50}
MODEL=${MODEL:-models/mt50}
EVAL_EPISODES=${EVAL_EPISODES:-50}
WORKERS=${WORKERS:-2}
# The tasks the stage-2 screen found weakest (docs/mt50.md); stage 3 adds episodes of them.
EXTRA_TASKS="dial-turn door-lock handle-pull-side reach reach-wall peg-unplug-side bin-picking
 box-close peg-insert-side soccer hand-insert push-back disassemble stick-pull"
# The weakest tasks of the stage-5 protocol run; stage 6 adds episodes of them.
EXTRA2_TASKS="bin-picking soccer reach-wall reach disassemble door-lock peg-insert-side
 box-close shelf-place basketball"
# The weakest tasks of the stage-6 protocol run; stage 7 trains on the stage-6 policy's
# own episodes of them, labelled by the expert (DAgger).
DAGGER_TASKS="bin-picking reach-wall disassemble reach soccer door-lock peg-insert-side
 push-back box-close shelf-place pick-place-wall handle-pull peg-unplug-side pick-place
 basketball stick-pull"
# The weak tasks of the stage-7 protocol run; stage 8 trains on the stage-7 policy's own
# episodes of them, labelled by the expert (disassemble gets the revised expert's labels).
DAGGER8_TASKS="bin-picking reach-wall reach soccer door-lock peg-insert-side push-back
 box-close shelf-place pick-place-wall handle-pull peg-unplug-side pick-place basketball
 stick-pull handle-pull-side assembly hand-insert plate-slide-back"
# The weak tasks of the stage-8 protocol run; stage 9 trains on the stage-8 policy's own
# episodes of them, labelled by the expert.
DAGGER9_TASKS="soccer peg-insert-side plate-slide-back push-back bin-picking reach door-lock
 box-close shelf-place pick-place-wall lever-pull handle-pull hand-insert"
# The weak tasks of the stage-9 protocol run; stage 10 trains on the stage-9 policy's own
# episodes of them, labelled by the expert (pick-out-of-hole's at weight 0 there).
DAGGER10_TASKS="soccer peg-insert-side box-close basketball door-lock handle-pull-side
 push-back shelf-place lever-pull reach hand-insert pick-out-of-hole"

stamp() { date +%s; }
minutes() { echo $(( ($2 - $1) / 60 )); }

# train STAGE DATA...: run (or resume) one stage into $RUN/stageN, starting from $MODEL
# for stages 2 to 12, then copy its best weights to $MODEL for the next stage.
train_stage() {
  local stage=$1; shift
  local out="$RUN/stage$stage" config="config/train/mt50_stage$stage.yaml"
  local args=(--config "$config" --data "$@" --out "$out")
  if [ "$stage" != 1 ]; then args+=(--init-from "$MODEL"); fi
  if [ -e "$out/last" ]; then args+=(--resume); fi
  echo "== stage $stage: $config"
  $BIN/hybrid-vla train "${args[@]}"
  mkdir -p "$MODEL"
  cp "$out/best/config.yaml" "$out/best/model.safetensors" "$MODEL/"
}

# dagger_collect STAGE OUT SEED TASKS EPISODES EXPERT [DRIVER]: the weights in DRIVER
# (default $MODEL, the previous stage's) drive EPISODES episodes of each task while the
# scripted expert EXPERT (protocol or revised) labels every state (DAgger). Only before
# STAGE starts: once it has, $MODEL may already hold newer weights, and the collection
# finished before the stage began (bags already recorded are skipped on a rerun).
dagger_collect() {
  local stage=$1 out=$2 seed=$3 tasks=$4 episodes=$5 expert=$6 driver=${7:-$MODEL}
  if [ -e "$RUN/stage$stage/last" ]; then return; fi
  echo "== DAgger episodes for stage $stage: $out (driven by $driver)"
  $BIN/hybrid-vla export --checkpoint "$driver"
  # shellcheck disable=SC2086  # the task list is meant to split into words
  $BIN/hybrid-vla collect --suite mt50 --episodes "$episodes" --seed "$seed" --out "$out" \
    --workers "$WORKERS" --policy "$driver" --policy-share 1.0 --expert "$expert" \
    --tasks $tasks
}

T0=$(stamp)
$BIN/hybrid-vla collect --suite mt50 --episodes 50 --seed 0 --out "$DATA" --workers "$WORKERS"
# shellcheck disable=SC2086  # the task list is meant to split into words
$BIN/hybrid-vla collect --suite mt50 --episodes 75 --seed 50 --out "$EXTRA" \
  --workers "$WORKERS" --tasks $EXTRA_TASKS
# shellcheck disable=SC2086
$BIN/hybrid-vla collect --suite mt50 --episodes 75 --seed 125 --out "$EXTRA2" \
  --workers "$WORKERS" --tasks $EXTRA2_TASKS
$BIN/hybrid-vla collect --suite mt50 --episodes 200 --seed 0 --out "$REVISED" \
  --workers "$WORKERS" --expert revised --tasks disassemble
$BIN/hybrid-vla collect --suite mt50 --episodes 100 --seed 0 --out "$REVISED_PSB" \
  --workers "$WORKERS" --expert revised --tasks plate-slide-back
$BIN/hybrid-vla collect --suite mt50 --episodes 125 --seed 0 --out "$REVISED_BB" \
  --workers "$WORKERS" --expert revised --tasks basketball
# bin-picking's episodes here stay out of training (weight 0 in mt50_stage12.yaml).
$BIN/hybrid-vla collect --suite mt50 --episodes 200 --seed 0 --out "$REVISED_GRASP" \
  --workers "$WORKERS" --expert revised --tasks peg-insert-side bin-picking
T1=$(stamp)
train_stage 1 "$DATA"
train_stage 2 "$DATA"
train_stage 3 "$DATA" "$EXTRA"
train_stage 4 "$DATA" "$EXTRA"
train_stage 5 "$DATA" "$EXTRA"
train_stage 6 "$DATA" "$EXTRA" "$EXTRA2"
dagger_collect 7 "$DAGGER" 300 "$DAGGER_TASKS" 20 protocol
train_stage 7 "$DATA" "$EXTRA" "$EXTRA2" "$DAGGER"
dagger_collect 8 "$REVISED_DAGGER" 400 disassemble 200 revised
dagger_collect 8 "$DAGGER8" 600 "$DAGGER8_TASKS" 40 protocol
# From stage 8 on, each stage trains on the previous stage's sets and the ones it adds.
SETS=("$DATA" "$EXTRA" "$EXTRA2" "$REVISED" "$REVISED_DAGGER" "$DAGGER8")
train_stage 8 "${SETS[@]}"
dagger_collect 9 "$DAGGER9" 700 "$DAGGER9_TASKS" 40 protocol
SETS+=("$DAGGER9")
train_stage 9 "${SETS[@]}"
dagger_collect 10 "$DAGGER10" 800 "$DAGGER10_TASKS" 40 protocol
dagger_collect 10 "$REVISED_PSB_DAGGER" 800 plate-slide-back 40 revised
SETS+=("$DAGGER10" "$REVISED_PSB" "$REVISED_PSB_DAGGER")
train_stage 10 "${SETS[@]}"
# Stage 11's relabelled episodes were driven by the stage-9 policy (the one stage 10's
# DAgger round ran), not stage 10's: the same trajectories as $DAGGER10's, new labels.
dagger_collect 11 "$REVISED_POOH_DAGGER" 800 pick-out-of-hole 40 revised "$RUN/stage9/best"
dagger_collect 11 "$REVISED_BB_DAGGER" 800 basketball 40 revised "$RUN/stage9/best"
SETS+=("$REVISED_POOH_DAGGER" "$REVISED_BB" "$REVISED_BB_DAGGER")
train_stage 11 "${SETS[@]}"
# The weak tasks of the stage-11 protocol run; stage 12 trains on the stage-11 policy's
# own episodes of them, peg-insert-side labelled by the revised expert (and its
# stage-9-driven trajectories relabelled), the others by the protocol's.
dagger_collect 12 "$REVISED_PEG_DAGGER9" 800 peg-insert-side 40 revised "$RUN/stage9/best"
dagger_collect 12 "$REVISED_PEG_DAGGER11" 900 peg-insert-side 40 revised
dagger_collect 12 "$DAGGER12" 900 "handle-pull-side push-back soccer lever-pull" 40 protocol
SETS+=("$REVISED_GRASP" "$REVISED_PEG_DAGGER9" "$REVISED_PEG_DAGGER11" "$DAGGER12")
train_stage 12 "${SETS[@]}"
T2=$(stamp)
$BIN/hybrid-vla export --checkpoint "$MODEL"
T3=$(stamp)
$BIN/hybrid-vla eval-sim --suite mt50 --checkpoint "$MODEL" --episodes "$EVAL_EPISODES" \
  --workers "$WORKERS" --out "$MODEL/eval"
T4=$(stamp)
echo "train-mt50 times: collection $(minutes "$T0" "$T1") min," \
     "training $(minutes "$T1" "$T2") min, export $(minutes "$T2" "$T3") min," \
     "evaluation $(minutes "$T3" "$T4") min; $(minutes "$T0" "$T4") min in all" \
     "(this run; parts done earlier were skipped)"
