#!/usr/bin/env bash
# gRPC API benchmark (a report, not a test): a release `backflow control-plane` on the
# PostgreSQL store, driven by ghz over loopback.
#   1. TriggerSync throughput: N syncs, one trigger each (every call queues a new run).
#   2. GetRun latency at a fixed 500 requests/s.
#   3. queued→running latency: two workers lease runs triggered one at a time; the latency
#      is read back from each run's create_time and start_time.
# Usage: scripts/bench-api.sh [SYNCS]   (default 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
syncs=${1:-5000}

scripts/services.sh start >/dev/null
eval "$(scripts/services.sh env)"
export PATH="$PATH:$(go env GOPATH)/bin"
command -v ghz >/dev/null || go install github.com/bojand/ghz/cmd/ghz@v0.121.0
# BACKFLOW_BIN measures an already built binary instead of building the release one.
if [ -z "${BACKFLOW_BIN:-}" ]; then
  cargo build --release --locked -p backflow
fi
backflow="${BACKFLOW_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/backflow}"

work=$(mktemp -d)
pg="$BACKFLOW_TEST_POSTGRES_URL"
db="bf_bench_$$"
psql "$pg" -qc "CREATE DATABASE $db" >/dev/null
store="${pg%/*}/$db"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
addr="127.0.0.1:$port"
export BACKFLOW_SERVER="http://$addr"
"$backflow" control-plane --listen "$addr" --store "$store" --snapshots "$work/snapshots" \
  > "$work/control-plane.log" 2>&1 &
cp=$!
workers=()
cleanup() {
  kill "$cp" "${workers[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  psql "$pg" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 1 100); do "$backflow" syncs list >/dev/null 2>&1 && break; sleep 0.1; done

# A tiny source and destination: the API, not the engine, is measured here.
psql "$pg" -qc "CREATE TABLE IF NOT EXISTS bench_api_src (id int PRIMARY KEY, v text);
                INSERT INTO bench_api_src VALUES (1, 'a') ON CONFLICT DO NOTHING;" >/dev/null
cat > "$work/defs.yaml" <<YAML
connections:
  - { name: pg, type: postgres, config: { url: "$pg" } }
syncs: []
YAML
"$backflow" apply -f "$work/defs.yaml" >/dev/null

echo "== creating $syncs syncs"
ghz --insecure --call backflow.v1.SyncService/CreateSync -n "$syncs" -c 8 \
  -d '{"sync_id":"s{{.RequestNumber}}","sync":{"source":{"connection":"pg","query":"SELECT id, v FROM bench_api_src"},"primary_key":["id"],"destination":{"connection":"pg","object":"bench_api_dst_{{.RequestNumber}}","mode":"SYNC_MODE_UPSERT","create_table":true}}}' \
  "$addr" | grep -E "Requests/sec|Error distribution|\[OK\]" || true

echo "== 1. TriggerSync throughput ($syncs triggers, 16 concurrent, each queues a new run)"
ghz --insecure --call backflow.v1.SyncService/TriggerSync -n "$syncs" -c 16 \
  -d '{"name":"syncs/s{{.RequestNumber}}"}' "$addr" | sed -n '/Summary/,/Status code distribution/p'

run=$("$backflow" runs list --limit 1 --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["name"])')
echo "== 2. GetRun latency at 500 requests/s (5000 requests)"
ghz --insecure --call backflow.v1.RunService/GetRun -n 5000 --rps 500 -c 8 \
  -d "{\"name\":\"$run\"}" "$addr" | sed -n '/Summary/,/Status code distribution/p'

echo "== 3. queued→running latency (2 workers, 100 triggers 50 ms apart)"
psql "$store" -qc "UPDATE runs SET state = 'cancelled' WHERE state IN ('queued', 'running')" >/dev/null
for i in 1 2; do
  "$backflow" worker --server "$BACKFLOW_SERVER" --concurrency 2 > "$work/worker$i.log" 2>&1 &
  workers+=($!)
done
sleep 1
for i in $(seq 0 99); do
  "$backflow" trigger "s$i" >/dev/null
  sleep 0.05
done
sleep 3
psql "$store" -At -c "
  SELECT 'runs ' || count(*) ||
         ', p50 ' || percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - created_at) || ' ms' ||
         ', p99 ' || percentile_cont(0.99) WITHIN GROUP (ORDER BY started_at - created_at) || ' ms'
  FROM runs WHERE started_at IS NOT NULL AND state <> 'cancelled'"
