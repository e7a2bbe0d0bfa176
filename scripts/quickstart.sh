#!/usr/bin/env bash
# The quickstart, on a fresh machine: builds Backflow, creates a small warehouse (100,000
# customers as Parquet, queried with SQL by the `files` connector), starts `backflow
# standalone` (control plane + worker, SQLite state), applies examples/quickstart/backflow.yaml,
# triggers the sync into a SQLite application database, rescores 1% of the customers in the
# warehouse, triggers again and shows that only those rows moved.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cargo build --release --locked -p backflow
backflow="${CARGO_TARGET_DIR:-$root/target}/release/backflow"

work="$root/examples/quickstart/run"
rm -rf "$work" && mkdir -p "$work"
cd "$work"

# A free loopback port, so the quickstart never collides with a running instance.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export BACKFLOW_SERVER="http://127.0.0.1:$port"

echo "== 1. the warehouse: 100,000 customers with scores"
"$backflow" demo-data --customers 100000 --revision 1 --out warehouse/customers.parquet

echo "== 2. start backflow standalone on $BACKFLOW_SERVER (state in ./.backflow)"
"$backflow" standalone --listen "127.0.0.1:$port" --data-dir .backflow > standalone.log 2>&1 &
standalone=$!
trap 'kill $standalone 2>/dev/null; wait $standalone 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  "$backflow" syncs list >/dev/null 2>&1 && break
  kill -0 $standalone 2>/dev/null || { cat standalone.log; exit 1; }
  sleep 0.1
done

echo "== 3. apply the definitions"
"$backflow" apply -f ../backflow.yaml

echo "== 4. first sync into the application database (SQLite, ./app.db)"
"$backflow" trigger customer_scores --wait

echo "== 5. the warehouse rescores 1% of the customers"
"$backflow" demo-data --customers 100000 --revision 2 --out warehouse/customers.parquet

echo "== 6. re-sync: only the changed rows move"
"$backflow" trigger customer_scores --wait

echo "== 7. the run history"
"$backflow" runs list --sync customer_scores
