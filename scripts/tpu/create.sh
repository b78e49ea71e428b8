#!/usr/bin/env bash
# Creates a Cloud TPU VM slice for deit3-deno (not run in CI: needs a GCP project).
#   scripts/tpu/create.sh NAME [ZONE] [ACCELERATOR] [RUNTIME]
set -euo pipefail
name=${1:?usage: create.sh NAME [ZONE] [ACCELERATOR] [RUNTIME]}
zone=${2:-us-central2-b}
accel=${3:-v4-64}
runtime=${4:-tpu-ubuntu2204-base}
gcloud compute tpus tpu-vm create "$name" --zone "$zone" --accelerator-type "$accel" --version "$runtime"
