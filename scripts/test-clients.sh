#!/usr/bin/env bash
# The Python, Go and TypeScript clients, as CI runs them (scripts/test.sh, after the Rust
# tests): the API's compatibility with the previous commit (`buf breaking`), the checked-in
# stubs against a fresh generation, then each client's tests against `backflow standalone`.
# Installs the pinned tools on first use (scripts/client-tools.sh). Builds the `backflow`
# binary unless BACKFLOW_BIN points at one.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/client-tools.sh
. "$ROOT/scripts/client-tools.sh"
install_client_tools
cd "$ROOT"

step() { printf '== %s\n' "$*"; }

step "buf breaking against the previous commit"
if previous=$(git rev-parse --verify --quiet 'HEAD~1^{commit}'); then
  "$BUF" breaking proto --against ".git#ref=$previous,subdir=proto"
else
  echo "skipped: HEAD has no parent in this clone (first commit, or a shallow clone)"
fi

step "generated stubs are up to date"
generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
"$ROOT/scripts/gen-clients.sh" -o "$generated"
stale=0
for dir in clients/go/gen clients/python/gen clients/typescript/src/gen; do
  diff -r -x __pycache__ "$generated/$dir" "$dir" || stale=1
done
if [ "$stale" -ne 0 ]; then
  echo "the checked-in client stubs are stale: run scripts/gen-clients.sh and commit the result" >&2
  exit 1
fi

if [ -z "${BACKFLOW_BIN:-}" ]; then
  step "backflow binary"
  cargo build --locked --quiet -p backflow --bin backflow
  export BACKFLOW_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/backflow"
fi

step "python client, newest supported runtimes ($(cd clients/python && grep -h '^protobuf==\|^grpcio==' constraints/highest.txt | paste -sd' '))"
(cd clients/python && "$VENV/bin/python3" -m mypy --cache-dir "$TOOLS_DIR/mypy-cache")
PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python3" -m pytest -q -p no:cacheprovider clients/python
step "python client, oldest supported runtimes ($(cd clients/python && grep -h '^protobuf==\|^grpcio==' constraints/lowest.txt | paste -sd' '))"
PYTHONDONTWRITEBYTECODE=1 "$LOWEST_VENV/bin/python3" -m pytest -q -p no:cacheprovider clients/python

step "go client"
(
  cd clients/go
  unformatted=$(gofmt -l backflow e2e)
  if [ -n "$unformatted" ]; then
    echo "not gofmt-formatted: $unformatted" >&2
    exit 1
  fi
  go vet ./...
  # The oldest Go the module declares (go.mod) must build it: Go fetches that toolchain from
  # the module proxy once.
  GOTOOLCHAIN="go$(go mod edit -json | python3 -c 'import json, sys; print(json.load(sys.stdin)["Go"])')" \
    go build ./...
  # The end-to-end tests are a module of their own (e2e/go.mod), so their SQLite driver never
  # reaches a consumer's module graph.
  cd e2e
  go vet ./...
  go test -count=1 ./...
)

step "typescript client"
(cd clients/typescript && npm test --silent)

step "clients installed the documented way into empty projects"
"$ROOT/scripts/test-client-installs.sh"
