# shellcheck shell=bash
# Sourced by scripts/gen-clients.sh and scripts/test-clients.sh: installs the pinned tools the
# Python, Go and TypeScript clients are generated and tested with, and puts them on PATH.
# Idempotent and quick when everything is there; everything lives under the tools directory
# ($BACKFLOW_TOOLS_DIR, default /var/tmp/backflow-tools), except the TypeScript client's
# node_modules (clients/typescript, from its package-lock.json).
#
# Needs: bash, python3 (3.9+, with venv), go, node 20+ and npm.

: "${ROOT:?ROOT must be the repository root}"
TOOLS_DIR=${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}
BUF="$TOOLS_DIR/node_modules/.bin/buf"
BUF_VERSION=1.75.0
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.1
# The Python stubs' generator: grpcio-tools 1.62.3 bundles protoc for protobuf 4.25.1, whose
# generated code loads under every protobuf runtime from 4.25.1 to 7.x (newer protocs emit a
# check that refuses older runtimes). It needs protobuf 4, so it has a venv of its own.
PY_GRPCIO_TOOLS_VERSION=1.62.3
GEN_VENV="$TOOLS_DIR/venv-protoc"
# The Python client's tests run twice: with the newest and with the oldest runtime versions
# it supports (clients/python/constraints/).
VENV="$TOOLS_DIR/venv"
LOWEST_VENV="$TOOLS_DIR/venv-lowest"

# Rewrites a stamp only after the install it records succeeded, so an interrupted install is
# retried next time.
_stamp_matches() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

install_client_tools() {
  mkdir -p "$TOOLS_DIR/bin"

  # buf: scripts/install-deps.sh owns its install.
  if [ "$("$BUF" --version 2>/dev/null)" != "$BUF_VERSION" ]; then
    "$ROOT/scripts/install-deps.sh"
  fi

  # Go plugins, built from the Go module proxy.
  if [ "$("$TOOLS_DIR/bin/protoc-gen-go" --version 2>/dev/null)" != "protoc-gen-go $PROTOC_GEN_GO_VERSION" ]; then
    echo "installing protoc-gen-go $PROTOC_GEN_GO_VERSION into $TOOLS_DIR/bin"
    GOBIN="$TOOLS_DIR/bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  fi
  if [ "$("$TOOLS_DIR/bin/protoc-gen-go-grpc" --version 2>/dev/null)" != "protoc-gen-go-grpc ${PROTOC_GEN_GO_GRPC_VERSION#v}" ]; then
    echo "installing protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC_VERSION into $TOOLS_DIR/bin"
    GOBIN="$TOOLS_DIR/bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
  fi

  # Python: the generator's venv, then the client installed editable from this clone into a
  # venv with the newest supported runtimes and the dev tools, and into one with the oldest.
  if [ "$("$GEN_VENV/bin/python3" -c 'import grpc_tools, importlib.metadata as m; print(m.version("grpcio-tools"))' 2>/dev/null)" != "$PY_GRPCIO_TOOLS_VERSION" ]; then
    echo "installing grpcio-tools $PY_GRPCIO_TOOLS_VERSION into $GEN_VENV"
    [ -x "$GEN_VENV/bin/python3" ] || python3 -m venv "$GEN_VENV"
    "$GEN_VENV/bin/python3" -m pip install --quiet --disable-pip-version-check \
      "grpcio-tools==$PY_GRPCIO_TOOLS_VERSION"
  fi
  local py="$ROOT/clients/python" py_stamp
  py_stamp="$ROOT $(cat "$py/pyproject.toml" "$py/constraints/"*.txt | sha256sum | cut -d' ' -f1)"
  if ! _stamp_matches "$VENV/.backflow-client" "$py_stamp"; then
    echo "installing the Python client, its newest supported runtimes and its tools into $VENV"
    [ -x "$VENV/bin/python3" ] || python3 -m venv "$VENV"
    "$VENV/bin/python3" -m pip install --quiet --disable-pip-version-check \
      --constraint "$py/constraints/highest.txt" --editable "$py[dev]"
    echo "$py_stamp" > "$VENV/.backflow-client"
  fi
  if ! _stamp_matches "$LOWEST_VENV/.backflow-client" "$py_stamp"; then
    echo "installing the Python client with its oldest supported runtimes into $LOWEST_VENV"
    [ -x "$LOWEST_VENV/bin/python3" ] || python3 -m venv "$LOWEST_VENV"
    "$LOWEST_VENV/bin/python3" -m pip install --quiet --disable-pip-version-check \
      --constraint "$py/constraints/lowest.txt" --editable "$py" \
      "pytest==$(sed -n 's/^ *"pytest==\([^"]*\)",$/\1/p' "$py/pyproject.toml")"
    echo "$py_stamp" > "$LOWEST_VENV/.backflow-client"
  fi

  # TypeScript: protoc-gen-es, tsc and the runtime libraries, exactly as package-lock.json says.
  local ts="$ROOT/clients/typescript" ts_stamp
  ts_stamp=$(sha256sum "$ts/package-lock.json" | cut -d' ' -f1)
  if ! _stamp_matches "$ts/node_modules/.backflow-stamp" "$ts_stamp"; then
    echo "installing the TypeScript client's packages (npm ci)"
    (cd "$ts" && npm ci --no-audit --no-fund --silent)
    echo "$ts_stamp" > "$ts/node_modules/.backflow-stamp"
  fi

  export PATH="$VENV/bin:$TOOLS_DIR/bin:$ts/node_modules/.bin:$PATH"
}
