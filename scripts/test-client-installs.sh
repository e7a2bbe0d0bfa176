#!/usr/bin/env bash
# The Python, Go and TypeScript clients installed the way their READMEs' Install sections say,
# each into an empty project of its own, and used from a small program written as a user would
# write it against one `backflow standalone`: a CSV file synced into SQLite, with the run's
# counts checked. CI runs it from scripts/test-clients.sh: the clients' own tests import them
# from this clone, so they cannot catch a package that does not install, ships without a file
# it needs, or drags test-only dependencies into a consumer (the Go module's SQLite driver must
# stay out of a consumer's module graph). Python is installed with the oldest runtime versions
# it supports (constraints/lowest.txt).
#
#   BACKFLOW_BIN=target/debug/backflow scripts/test-client-installs.sh
#
# Needs the registries (PyPI, npm, the Go module proxy) or warm caches of them. Everything it
# makes lives in one temporary directory, removed on exit, except what building the packages
# writes into the clone (ignored by git): the TypeScript client's dist/ (npm pack's prepack)
# and the Python package's egg-info (pip; its build/ is removed).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "${BACKFLOW_BIN:-}" ]; then
  echo "BACKFLOW_BIN must name the backflow binary (cargo build -p backflow --bin backflow)" >&2
  exit 2
fi
if [ ! -f "$BACKFLOW_BIN" ]; then
  echo "BACKFLOW_BIN=$BACKFLOW_BIN is not a file" >&2
  exit 2
fi

# shellcheck source=scripts/client-tools.sh
. "$ROOT/scripts/client-tools.sh"
install_client_tools
cd "$ROOT"

step() { printf '== %s\n' "$*"; }

tmp=$(mktemp -d)
server=
py_build=
cleanup() {
  local status=$?
  if [ -n "$py_build" ]; then
    rm -rf "$py_build"
  fi
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$tmp/standalone.log" ]; then
    echo "-- the last lines of backflow standalone's log:" >&2
    tail -n 40 "$tmp/standalone.log" >&2
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

step "backflow standalone"
NO_COLOR=1 BACKFLOW__CONTROL_PLANE__API_TOKENS=install-test-token \
  BACKFLOW__CONTROL_PLANE__WORKER_TOKEN=install-test-worker \
  "$BACKFLOW_BIN" standalone --listen 127.0.0.1:0 --data-dir "$tmp/data" >"$tmp/standalone.log" 2>&1 &
server=$!
address=
for _ in $(seq 300); do
  address=$(sed -n 's|.*listening on \(http://127\.0\.0\.1:[0-9]*\).*|\1|p' "$tmp/standalone.log" | head -n 1)
  if [ -n "$address" ] || ! kill -0 "$server" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
if [ -z "$address" ]; then
  echo "backflow standalone did not start" >&2
  exit 1
fi
echo "listening on $address"

# What every program reads: where the control plane is, and the CSV file its `files`
# connection serves as table `scores`. Each program has its own connection and sync ids and
# its own SQLite destination ($SCORES_DB).
export BACKFLOW_ADDRESS=$address BACKFLOW_TOKEN=install-test-token SCORES_CSV="$tmp/scores.csv"
printf 'id,name,score\n1,ada,0.5\n2,bob,1.5\n3,cy,2.5\n' > "$SCORES_CSV"

# The destination table holds the CSV's 3 rows.
check_destination() {
  local rows
  rows=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM scores").fetchone()[0])' "$1")
  if [ "$rows" != 3 ]; then
    echo "$1: table scores has $rows rows, not 3" >&2
    exit 1
  fi
  echo "$1: 3 rows in table scores"
}

# Python: pip from the checkout into a fresh virtual environment, at the oldest supported
# runtimes. pip builds the wheel in the tree, in clients/python/build/ (ignored by git), which
# setuptools reuses: a module deleted from src/ would still ship from a stale one. So it starts
# without one and the one it leaves is removed on exit.
lowest="$ROOT/clients/python/constraints/lowest.txt"
step "python client installed with pip ($(grep -h '^protobuf==\|^grpcio==' "$lowest" | paste -sd' '))"
started=$SECONDS
py_build="$ROOT/clients/python/build"
rm -rf "$py_build"
mkdir "$tmp/py"
python3 -m venv "$tmp/py/venv"
"$tmp/py/venv/bin/python3" -m pip install --quiet --disable-pip-version-check \
  --constraint "$lowest" ./clients/python
"$tmp/py/venv/bin/python3" -c 'import importlib.metadata as m; print("installed:", *(f"{p} {m.version(p)}" for p in ("backflow-client", "protobuf", "grpcio", "grpcio-status")))'
cat > "$tmp/py/main.py" <<'EOF'
import os

from backflow_client import Client, run_pb2

with Client(os.environ["BACKFLOW_ADDRESS"], token=os.environ["BACKFLOW_TOKEN"]) as bf:
    bf.create_connection("py-csv", "files", {"tables": {"scores": os.environ["SCORES_CSV"]}})
    bf.create_connection("py-db", "sqlite", {"path": os.environ["SCORES_DB"]})
    bf.create_sync(
        "py-scores",
        source="py-csv", query="SELECT id, name, score FROM scores", primary_key=["id"],
        destination="py-db", table="scores", mode="upsert", create_table=True,
    )
    run = bf.trigger("py-scores").wait(timeout=120)
    assert run.state == run_pb2.RUN_STATE_SUCCEEDED, run
    assert run.counts.added == 3, run.counts
    print(f"{run.name}: read {run.counts.read}, added {run.counts.added}, written {run.counts.written}")
EOF
(cd "$tmp/py" && SCORES_DB="$tmp/py/py.db" venv/bin/python3 main.py)
check_destination "$tmp/py/py.db"
echo "python: $((SECONDS - started)) s"

# Go: an empty module depending on the client through the README's `replace` recipe.
step "go client required by an empty module (go mod edit -replace, go mod tidy)"
started=$SECONDS
mkdir "$tmp/go"
cd "$tmp/go"
go mod init example.com/tryclient
cat > main.go <<'EOF'
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/backflow/backflow/clients/go/backflow"
	backflowv1 "github.com/backflow/backflow/clients/go/gen/backflow/v1"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := backflow.New(os.Getenv("BACKFLOW_ADDRESS"), backflow.WithToken(os.Getenv("BACKFLOW_TOKEN")))
	if err != nil {
		return err
	}
	defer c.Close()
	tables := map[string]any{"scores": os.Getenv("SCORES_CSV")}
	if _, err := c.CreateConnection(ctx, "go-csv", "files", map[string]any{"tables": tables}); err != nil {
		return err
	}
	if _, err := c.CreateConnection(ctx, "go-db", "sqlite", map[string]any{"path": os.Getenv("SCORES_DB")}); err != nil {
		return err
	}
	_, err = c.CreateSync(ctx, "go-scores", &backflowv1.Sync{
		Source:     &backflowv1.SyncSource{Connection: "go-csv", Query: "SELECT id, name, score FROM scores"},
		PrimaryKey: []string{"id"},
		Destination: &backflowv1.SyncDestination{
			Connection:  "go-db",
			Object:      "scores",
			Mode:        backflowv1.SyncMode_SYNC_MODE_UPSERT,
			CreateTable: true,
		},
	})
	if err != nil {
		return err
	}
	p, err := c.Trigger(ctx, "go-scores")
	if err != nil {
		return err
	}
	run, err := p.Wait(ctx)
	if err != nil {
		return err
	}
	counts := run.GetCounts()
	if run.GetState() != backflowv1.RunState_RUN_STATE_SUCCEEDED || counts.GetAdded() != 3 {
		return fmt.Errorf("run %s ended %s with %d rows added, not 3", run.GetName(), run.GetState(), counts.GetAdded())
	}
	fmt.Printf("%s: read %d, added %d, written %d\n", run.GetName(), counts.GetRead(), counts.GetAdded(), counts.GetWritten())
	return nil
}
EOF
go mod edit -require=github.com/backflow/backflow/clients/go@v0.0.0 \
  -replace=github.com/backflow/backflow/clients/go="$ROOT/clients/go"
go mod tidy
SCORES_DB="$tmp/go/go.db" go run .
check_destination "$tmp/go/go.db"
modules=$(go list -m all)
if grep -F modernc.org/sqlite <<<"$modules"; then
  echo "the Go client's test-only SQLite driver is in a consumer's module graph (go list -m all above)" >&2
  exit 1
fi
echo "go list -m all: $(wc -l <<<"$modules") modules, no modernc.org/sqlite"
cd "$ROOT"
echo "go: $((SECONDS - started)) s"

# TypeScript: npm pack's tarball (prepack compiles dist/ with the devDependencies that
# install_client_tools put in clients/typescript/node_modules) installed into an empty package.
step "typescript client installed with npm from npm pack's tarball"
started=$SECONDS
(cd clients/typescript && npm pack --silent --pack-destination "$tmp" >/dev/null)
tarball=$(echo "$tmp"/backflow-client-*.tgz)
[ -f "$tarball" ] || { echo "npm pack wrote no backflow-client-*.tgz into $tmp" >&2; exit 1; }
mkdir "$tmp/ts"
cd "$tmp/ts"
npm init -y >/dev/null
npm install --no-audit --no-fund "$tarball"
if [ -e node_modules/sql.js ] || [ -e node_modules/typescript ]; then
  echo "the TypeScript client's devDependencies were installed into a consumer" >&2
  exit 1
fi
cat > main.mjs <<'EOF'
import { BackflowClient, RunState, SyncMode } from "@backflow/client";

const bf = new BackflowClient(process.env.BACKFLOW_ADDRESS, { token: process.env.BACKFLOW_TOKEN });
await bf.createConnection("ts-csv", "files", { tables: { scores: process.env.SCORES_CSV } });
await bf.createConnection("ts-db", "sqlite", { path: process.env.SCORES_DB });
await bf.createSync("ts-scores", {
  source: { connection: "ts-csv", query: "SELECT id, name, score FROM scores" },
  primaryKey: ["id"],
  destination: { connection: "ts-db", object: "scores", mode: SyncMode.UPSERT, createTable: true },
});
const run = await (await bf.trigger("ts-scores")).wait({ signal: AbortSignal.timeout(120_000) });
if (run.state !== RunState.SUCCEEDED || run.counts?.added !== 3n) {
  throw new Error(`run ${run.name} ended ${RunState[run.state]} with ${run.counts?.added} rows added, not 3`);
}
console.log(`${run.name}: read ${run.counts.read}, added ${run.counts.added}, written ${run.counts.written}`);
EOF
SCORES_DB="$tmp/ts/ts.db" node main.mjs
check_destination "$tmp/ts/ts.db"
cd "$ROOT"
echo "typescript: $((SECONDS - started)) s"

step "all three clients installed and ran in $SECONDS s"
