#!/usr/bin/env bash
# Launches one training process per host of a TPU VM slice (each owns its local chips).
#   scripts/tpu/launch.sh NAME ZONE CONFIG [--flag value ...]
# GCS_DATASET_DIR and GCS_MODEL_DIR are forwarded from this shell.
set -euo pipefail
name=${1:?usage: launch.sh NAME ZONE CONFIG [flags...]}
zone=${2:?zone}
config=${3:?config}
shift 3
gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker=all --command "
  cd deit3-deno &&
  GCS_DATASET_DIR='${GCS_DATASET_DIR:-}' GCS_MODEL_DIR='${GCS_MODEL_DIR:-}' \
  nohup deno task train '$config' --backend pjrt $* > train.log 2>&1 &
"
echo "started; follow with: gcloud compute tpus tpu-vm ssh $name --zone $zone --worker=0 --command 'tail -f deit3-deno/train.log'"
