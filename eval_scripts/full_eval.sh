#!/bin/bash
# The --size full table of the README: crepe and the fbank floor on the full
# offline suite, most informative cells first (pitch), event tasks last.
# Resumable: rerun it after an interruption and finished cells are skipped.
#
#   bash eval_scripts/full_eval.sh [TASKS_DIR] [OUT]        (defaults: tasks_full results_full)
set -euo pipefail
TASKS=${1:-tasks_full}
OUT=${2:-results_full}
export HF_HUB_OFFLINE=1
E=${HEAR_GURA:-.venv/bin/hear-gura}
[ -d "$TASKS" ] || $E tasks build "$TASKS" --size full
P="--tasks-dir $TASKS --out $OUT --probe-grid fast --grid-points 2"
SCENE=nsynth_like_pitch,env_sounds,kws,speaker_id,prosody,env_multilabel,language_id
time $E evaluate $P --ensembles fbank,crepe --tasks nsynth_like_pitch
time $E evaluate $P --ensembles fbank --tasks $SCENE
time $E evaluate $P --ensembles crepe --tasks $SCENE
time $E evaluate $P --ensembles fbank,crepe     # the event tasks, then the table of every cell
