#!/usr/bin/env bash
# A stand-in `gcloud` for tests/backend/pjrt/tpu_scripts_test.ts (installed on PATH as gcloud):
# records each call (one line of shell-quoted arguments in $FAKE_GCLOUD_DIR/calls) and
#   compute tpus tpu-vm describe ...  prints $FAKE_GCLOUD_IPS (e.g. "127.0.0.1;127.0.0.1");
#   compute tpus tpu-vm ssh ... --worker=I --command CMD
#                                     runs CMD as worker I would: bash in a home of its own
#                                     ($FAKE_GCLOUD_DIR/worker-I), with a bare environment and
#                                     PATH (no deno), then waits for what it started in the
#                                     background; with $FAKE_GCLOUD_RUN=0 it only records.
set -uo pipefail
dir=${FAKE_GCLOUD_DIR:?FAKE_GCLOUD_DIR}
printf '%q ' "$@" >>"$dir/calls"
echo >>"$dir/calls"
[[ $1 == compute && $2 == tpus && $3 == tpu-vm ]] || { echo "gcloud stand-in: unexpected $*" >&2; exit 2; }
case $4 in
  describe) echo "${FAKE_GCLOUD_IPS:?}" ;;
  ssh)
    worker="" command=""
    shift 4
    while (($#)); do
      case $1 in
        --worker=*) worker=${1#--worker=} ;;
        --command) command=$2; shift ;;
        --command=*) command=${1#--command=} ;;
      esac
      shift
    done
    [[ -n $command ]] || { echo "gcloud stand-in: ssh without --command" >&2; exit 2; }
    [[ ${FAKE_GCLOUD_RUN:-1} == 1 ]] || exit 0
    [[ $worker =~ ^[0-9]+$ ]] || { echo "gcloud stand-in: run needs --worker=N, got '$worker'" >&2; exit 2; }
    home="$dir/worker-$worker"
    # The home setup.sh leaves: ~/.deno/bin/deno and ~/deit3-deno (made by the test).
    exec env -i HOME="$home" PATH=/usr/bin:/bin DENO_DIR="${DENO_DIR:-}" \
      WANDB_MODE=disabled bash -c "$command"$'\n''wait'
    ;;
  *) echo "gcloud stand-in: unexpected $*" >&2; exit 2 ;;
esac
