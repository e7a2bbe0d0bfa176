#!/usr/bin/env bash
# Installs the system packages the test services need, from Debian's packages.
# Idempotent: does nothing when everything is already there.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

need=()
command -v /usr/lib/postgresql/15/bin/postgres >/dev/null 2>&1 \
  || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# buf (protobuf lint and breaking-change checks) ships as a binary inside its npm package.
# Installed into a tools directory outside the clone; BACKFLOW_TOOLS_DIR overrides it.
TOOLS_DIR=${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}
BUF_VERSION=1.75.0
if [ "$("$TOOLS_DIR/node_modules/.bin/buf" --version 2>/dev/null)" != "$BUF_VERSION" ]; then
  echo "installing buf $BUF_VERSION into $TOOLS_DIR"
  mkdir -p "$TOOLS_DIR"
  npm install --prefix "$TOOLS_DIR" --no-audit --no-fund --silent "@bufbuild/buf@$BUF_VERSION" >/dev/null
fi
