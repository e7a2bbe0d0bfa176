#!/usr/bin/env bash
# The whole test suite, as CI runs it: starts the test services, then the gate
# (format, lints) and every test against the real servers.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/services.sh start
eval "$(scripts/services.sh env)"

# The API contract: buf's lint rules on backflow.v1.
"${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}/node_modules/.bin/buf" lint proto

# The deployment files: the Helm chart rendered and validated offline, compose and Dockerfile parsed.
scripts/test-deploy.sh

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The generated clients (Python, Go, TypeScript) against the binary the workspace tests just
# built: stubs current, buf breaking against the previous commit, each client's own tests.
BACKFLOW_BIN="${CARGO_TARGET_DIR:-target}/debug/backflow" scripts/test-clients.sh
