# Jaeger v2 (all-in-one, in-memory storage), built from its Go module: the end-to-end tracing
# test exports spans to its OTLP/gRPC receiver and reads them back from its HTTP query API.
# Sourced by scripts/services.sh; defines start_jaeger, stop_jaeger, env_jaeger.

jaeger_version=v1.76.0   # the module tag that ships the Jaeger v2 binary
jaeger_bin=${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}/bin/jaeger
jaeger_otlp_port=${BACKFLOW_JAEGER_OTLP_PORT:-4317}
jaeger_query_port=${BACKFLOW_JAEGER_QUERY_PORT:-16686}
jaeger_grpc_query_port=${BACKFLOW_JAEGER_GRPC_QUERY_PORT:-16685}
jaeger_health_port=${BACKFLOW_JAEGER_HEALTH_PORT:-13133}

env_jaeger() {
  echo "export BACKFLOW_TEST_JAEGER_QUERY_URL=http://127.0.0.1:${jaeger_query_port}"
  echo "export BACKFLOW_TEST_OTLP_ENDPOINT=http://127.0.0.1:${jaeger_otlp_port}"
}

install_jaeger() {
  if [ -x "$jaeger_bin" ]; then return; fi
  command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin"
  # `go install …@version` refuses modules with replace directives (Jaeger has one), so the
  # module is downloaded and built as the main module.
  local src
  src=$(go mod download -json "github.com/jaegertracing/jaeger@${jaeger_version}" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  mkdir -p "$(dirname "$jaeger_bin")"
  echo "building jaeger ${jaeger_version} (a few minutes the first time)"
  (cd "$src" && GOFLAGS=-mod=mod go build -o "$jaeger_bin.tmp" ./cmd/jaeger)
  mv "$jaeger_bin.tmp" "$jaeger_bin"
}

jaeger_ready() {
  curl -fsS -o /dev/null "http://127.0.0.1:${jaeger_query_port}/api/services" 2>/dev/null
}

start_jaeger() {
  local state="$dir/jaeger"
  if jaeger_ready; then
    echo "jaeger already running on 127.0.0.1:${jaeger_query_port}"
    return
  fi
  install_jaeger
  mkdir -p "$state"
  cat > "$state/config.yaml" <<YAML
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:${jaeger_health_port}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:${jaeger_query_port}
    grpc:
      endpoint: 127.0.0.1:${jaeger_grpc_query_port}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${jaeger_otlp_port}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
YAML
  nohup "$jaeger_bin" --config "file:$state/config.yaml" > "$state/jaeger.log" 2>&1 &
  echo $! > "$state/jaeger.pid"
  local tries=0
  until jaeger_ready; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
      echo "jaeger did not start; see $state/jaeger.log" >&2
      tail -n 20 "$state/jaeger.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  echo "jaeger started: OTLP gRPC 127.0.0.1:${jaeger_otlp_port}, query http://127.0.0.1:${jaeger_query_port}"
}

stop_jaeger() {
  local pidfile="$dir/jaeger/jaeger.pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}
