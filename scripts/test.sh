#!/usr/bin/env bash
# The whole test suite, as CI runs it: starts the test services, then the gate
# (format, lints) and every test against the real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

# Each phase is announced with the seconds since the start, so a slow run shows where its time went.
phase() { printf '== [%5ds] %s\n' "$SECONDS" "$*"; }

phase "cargo fmt --check"
cargo fmt --all -- --check

# Clippy runs inside the test build rather than as a build of its own: clippy-driver wraps
# rustc for the workspace's crates (RUSTC_WORKSPACE_WRAPPER, which is how `cargo clippy` runs
# it; CLIPPY_ARGS carries its `-- -D warnings`), so every dependency is compiled once, for the
# tests, instead of a second time in check mode for the lints. Exported for every cargo call
# below, so the test run reuses these builds.
clippy_driver=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver || true)
if [ -z "$clippy_driver" ]; then
  echo "clippy-driver not found: install clippy (rustup component add clippy)" >&2
  exit 1
fi
export RUSTC_WORKSPACE_WRAPPER="$clippy_driver"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"

# On a fresh machine the Rust build and the tool installs (Go-built test servers, helm,
# the clients' toolchains) each take many minutes and have long single-threaded stretches,
# so they overlap: the linted test build runs in the background meanwhile.
build_log=$(mktemp)
build=
# On an early exit the background build is stopped too. Every command here must succeed
# (errexit applies inside the trap, and its status would become the script's).
stop_build() {
  if [ -n "$build" ]; then pkill -P "$build" 2>/dev/null || true; fi
  rm -f "$build_log"
}
trap stop_build EXIT
(
  phase "test build with clippy (background)"
  cargo test --workspace --all-targets --locked --no-run
  phase "linted test build done (background)"
) >"$build_log" 2>&1 &
build=$!

phase "test services"
scripts/services.sh start
eval "$(scripts/services.sh env)"

# The API contract: buf's lint rules on backflow.v1.
phase "buf lint"
"${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}/node_modules/.bin/buf" lint proto

# The deployment files: the Helm chart rendered and validated offline, compose and Dockerfile parsed.
phase "deploy checks"
scripts/test-deploy.sh

# The clients' toolchains (Python venv, Go plugins, npm packages), used after the Rust tests.
phase "client toolchains"
ROOT=$(pwd)
# shellcheck source=scripts/client-tools.sh
. scripts/client-tools.sh
install_client_tools

phase "waiting for the lints and the test build"
if ! wait "$build"; then
  cat "$build_log"
  echo "the lints or the test build failed" >&2
  exit 1
fi
grep -E '^(== |warning|error)' "$build_log" || true

phase "cargo test"
cargo test --workspace --locked

# The generated clients (Python, Go, TypeScript) against the binary the workspace tests just
# built: stubs current, buf breaking against the previous commit, each client's own tests.
phase "client tests"
BACKFLOW_BIN="${CARGO_TARGET_DIR:-target}/debug/backflow" scripts/test-clients.sh
phase "done"
