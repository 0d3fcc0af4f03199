#!/usr/bin/env bash
# One task of command/slurm.sh's job arrays: the run named on line SLURM_ARRAY_TASK_ID + 1 of the list file $1.
set -euo pipefail
name="$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$1")"
exec "${PYTHON:-python}" -m utils.jobs run --to-file "$name"
