#!/usr/bin/env bash
# The quickstart, on a fresh machine: builds Backflow, creates a small warehouse (100,000
# customers as Parquet), syncs it into a SQLite application database, rescores 1% of the
# customers in the warehouse, syncs again and shows that only those rows moved.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

cargo build --release --locked -p backflow
backflow="${CARGO_TARGET_DIR:-$root/target}/release/backflow"

work="$root/examples/quickstart/run"
rm -rf "$work" && mkdir -p "$work"
cd "$work"

echo "== 1. the warehouse: 100,000 customers with scores"
"$backflow" demo-data --customers 100000 --revision 1 --out warehouse/customers.parquet

echo "== 2. first sync into the application database (SQLite, ./app.db)"
"$backflow" run -f ../backflow.yaml

echo "== 3. the warehouse rescores 1% of the customers"
"$backflow" demo-data --customers 100000 --revision 2 --out warehouse/customers.parquet

echo "== 4. re-sync: only the changed rows move"
"$backflow" run -f ../backflow.yaml

echo "== 5. nothing changed: nothing moves"
"$backflow" run -f ../backflow.yaml
