#!/usr/bin/env bash
# Launches one multi-host training job on a TPU VM slice: one process per worker, each owning
# its local chips, all in one data-parallel program.
#   scripts/tpu/launch.sh NAME ZONE CONFIG [--flag value ...]
# Worker i runs `deno task train CONFIG --backend pjrt --num-processes N --process-id i
# --coordinator IP0:8476`, where IP0 is worker 0's internal address: process 0 serves the
# key-value store there, and all processes check they resume from the same step. Every worker
# reads its own 1/N of the shard stream; only worker 0 writes checkpoints, metrics and logs, so
# the config's output-dir must be one place every worker can read (gs://...).
# GCS_DATASET_DIR and GCS_MODEL_DIR are forwarded from this shell.
set -euo pipefail
name=${1:?usage: launch.sh NAME ZONE CONFIG [flags...]}
zone=${2:?zone}
config=${3:?config}
shift 3
ips=$(gcloud compute tpus tpu-vm describe "$name" --zone "$zone" \
  --format='value(networkEndpoints[].ipAddress)' | tr ';,' '  ')
read -r -a workers <<<"$ips"
n=${#workers[@]}
[ "$n" -ge 1 ] || { echo "launch.sh: no workers found for $name in $zone" >&2; exit 1; }
coordinator="${workers[0]}:8476"
echo "launching $n process(es); coordinator $coordinator"
for i in $(seq 0 $((n - 1))); do
  gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker="$i" --command "
    cd deit3-deno &&
    GCS_DATASET_DIR='${GCS_DATASET_DIR:-}' GCS_MODEL_DIR='${GCS_MODEL_DIR:-}' \
    nohup deno task train '$config' --backend pjrt --num-processes $n --process-id $i \
      --coordinator $coordinator $* > train.log 2>&1 &
  " &
done
wait
echo "started; follow with: gcloud compute tpus tpu-vm ssh $name --zone $zone --worker=0 --command 'tail -f deit3-deno/train.log'"
