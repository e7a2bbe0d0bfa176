#!/usr/bin/env bash
# Regenerates the Python, Go and TypeScript clients' stubs from proto/ (buf.gen.yaml, local
# plugins only), installing the pinned plugins first. Commit the result: CI fails when the
# checked-in stubs differ from what this generates. Extra arguments go to `buf generate`
# (scripts/test-clients.sh passes `-o DIR` to generate elsewhere and compare).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/client-tools.sh
. "$ROOT/scripts/client-tools.sh"
install_client_tools
cd "$ROOT"
# buf.gen.yaml runs the Python generators with the `python3` on PATH: the generator's venv.
PATH="$GEN_VENV/bin:$PATH" "$BUF" generate --template buf.gen.yaml "$@"
