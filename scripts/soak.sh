#!/usr/bin/env bash
# The soak (not part of the test suite): mirror syncs into PostgreSQL, MariaDB and MongoDB
# (FerretDB) under continuous source changes and random faults (worker SIGKILL and SIGTERM,
# control-plane SIGKILL, destination sessions terminated) for MINUTES, then every sync runs
# once more and each destination is compared with its source row by row.
#
#   scripts/soak.sh [MINUTES=5] [SYNCS=8] [WORKERS=3] [SEED=7]
#
# Prints the report (runs, attempts, fault events, rows compared, rows differing) and fails
# if any row differs. Every process and server runs on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

scripts/services.sh start
eval "$(scripts/services.sh env)"

export BACKFLOW_SOAK_SECS=$(( ${1:-5} * 60 ))
export BACKFLOW_SOAK_SYNCS=${2:-8}
export BACKFLOW_SOAK_WORKERS=${3:-3}
export BACKFLOW_SOAK_SEED=${4:-7}

cargo build -p backflow
cargo test -p backflow-integration-tests --test soak -- --ignored --nocapture
