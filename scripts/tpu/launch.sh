#!/usr/bin/env bash
# Launches one multi-host training job on a TPU VM slice: one process per worker, each owning
# its local chips, all in one data-parallel program.
#   scripts/tpu/launch.sh NAME ZONE CONFIG [--flag value ...]
# Worker i runs `deno task train CONFIG --backend pjrt --num-processes N --process-id i
# --coordinator IP0:PORT [flags]` in ~/deit3-deno (flags after CONFIG come last and win, e.g.
# --backend cpu), where IP0 is worker 0's internal address and PORT $COORDINATOR_PORT (8476):
# process 0 serves the key-value store there, and all processes check they resume from the same
# step. Every worker reads its own 1/N of the shard stream; only worker 0 writes checkpoints,
# metrics and logs, so the config's output-dir must be one place every worker can read
# (gs://...). Each worker's output goes to ~/train.log there. GCS_DATASET_DIR and GCS_MODEL_DIR
# are forwarded from this shell. ~/.deno/bin (setup.sh) is put on PATH by the command itself:
# a non-interactive ssh shell does not read it from ~/.bashrc.
# Tested by tests/backend/pjrt/tpu_scripts_test.ts with a stand-in gcloud that runs each
# worker's command as a local process.
set -euo pipefail
name=${1:?usage: launch.sh NAME ZONE CONFIG [flags...]}
zone=${2:?zone}
config=${3:?config}
shift 3
port=${COORDINATOR_PORT:-8476}
ips=$(gcloud compute tpus tpu-vm describe "$name" --zone "$zone" \
  --format='value(networkEndpoints[].ipAddress)' | tr ';,' '  ')
read -r -a workers <<<"$ips"
n=${#workers[@]}
[ "$n" -ge 1 ] || { echo "launch.sh: no workers found for $name in $zone" >&2; exit 1; }
coordinator="${workers[0]}:$port"
flags=""
(($# == 0)) || flags=$(printf ' %q' "$@")
env_vars="GCS_DATASET_DIR=$(printf %q "${GCS_DATASET_DIR:-}") GCS_MODEL_DIR=$(printf %q "${GCS_MODEL_DIR:-}")"
echo "launching $n process(es); coordinator $coordinator"
for i in $(seq 0 $((n - 1))); do
  gcloud compute tpus tpu-vm ssh "$name" --zone "$zone" --worker="$i" --command "
    export PATH=\"\$HOME/.deno/bin:\$HOME/.local/bin:\$PATH\"
    cd ~/deit3-deno &&
    $env_vars nohup deno task train $(printf %q "$config") --backend pjrt \
      --num-processes $n --process-id $i --coordinator $coordinator$flags \
      >~/train.log 2>&1 </dev/null &
  " &
done
wait
echo "started; follow with: gcloud compute tpus tpu-vm ssh $name --zone $zone --worker=0 --command 'tail -f train.log'"
