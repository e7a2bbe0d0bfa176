# goccy's BigQuery emulator v0.8.1 (pure Go: REST API plus the Storage Read/Write gRPC API,
# GoogleSQL over SQLite compiled to Go), for the BigQuery source's tests and benchmark.
# Sourced by scripts/services.sh; defines start_bigquery, stop_bigquery, env_bigquery.
# State is in memory: a restart empties it. The project is `test`.
#
# Built from the module source fetched through the Go proxy rather than with
# `go install …@v0.8.1`: `go install` also lists the module's versions to look for deprecation
# notices, and a proxy that refuses that listing (403) fails the whole install. The build
# needs no cgo; it takes about 7 minutes on 2 cores the first time.

bq_version=v0.8.1
bq_revision=a531d3d
bq_port=${BACKFLOW_BIGQUERY_PORT:-59050}
bq_grpc_port=${BACKFLOW_BIGQUERY_GRPC_PORT:-59060}
bq_tools=${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}
bq_bin="$bq_tools/bin/bigquery-emulator"

env_bigquery() {
  echo "export BACKFLOW_TEST_BIGQUERY_URL=http://127.0.0.1:${bq_port}"
  echo "export BACKFLOW_TEST_BIGQUERY_GRPC=127.0.0.1:${bq_grpc_port}"
  echo "export BACKFLOW_TEST_BIGQUERY_PROJECT=test"
}

install_bigquery() {
  if [ -x "$bq_bin" ] && "$bq_bin" --version 2>/dev/null | grep -q "version: ${bq_version} "; then
    return
  fi
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
  fi
  if ! command -v go >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-go >/dev/null
  fi
  echo "building bigquery-emulator ${bq_version} into $bq_bin (several minutes)"
  local module src
  module=$(cd / && GOFLAGS=-mod=mod go mod download -json "github.com/goccy/bigquery-emulator@${bq_version}" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$module" ] || [ ! -d "$module" ]; then
    echo "could not download the bigquery-emulator ${bq_version} module" >&2
    exit 1
  fi
  src="$bq_tools/src/bigquery-emulator-${bq_version}"
  rm -rf "$src"
  mkdir -p "$bq_tools/src" "$bq_tools/bin"
  cp -r "$module" "$src"
  chmod -R u+w "$src"
  (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -o "$bq_bin.tmp" \
    -ldflags="-s -w -X main.version=${bq_version} -X main.revision=${bq_revision}" \
    ./cmd/bigquery-emulator)
  mv "$bq_bin.tmp" "$bq_bin"
}

# Whether the REST API answers (the project's dataset list).
bigquery_answers() {
  curl -sf -o /dev/null -m 2 "http://127.0.0.1:${bq_port}/bigquery/v2/projects/test/datasets" 2>/dev/null \
    && (exec 3<>"/dev/tcp/127.0.0.1/${bq_grpc_port}") 2>/dev/null
}

start_bigquery() {
  local state="$dir/bigquery"
  install_bigquery
  mkdir -p "$state"
  if bigquery_answers; then
    echo "bigquery emulator already running on 127.0.0.1:${bq_port} (gRPC ${bq_grpc_port})"
    return
  fi
  nohup "$bq_bin" \
    --project=test \
    --host=127.0.0.1 \
    --port="$bq_port" \
    --grpc-port="$bq_grpc_port" \
    --log-level=error \
    >"$state/server.log" 2>&1 </dev/null &
  echo $! >"$state/pid"
  local tries=0
  until bigquery_answers; do
    tries=$((tries + 1))
    if [ "$tries" -ge 150 ] || ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "bigquery emulator did not start; see $state/server.log" >&2
      tail -n 20 "$state/server.log" >&2 || true
      exit 1
    fi
    sleep 0.2
  done
  echo "bigquery emulator started on 127.0.0.1:${bq_port} (gRPC ${bq_grpc_port})"
}

stop_bigquery() {
  local pidfile="$dir/bigquery/pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}
