# FerretDB 1.24.2 (a MongoDB-protocol server) on its PostgreSQL backend, in its own database
# of the running PostgreSQL: the MongoDB connector tests.
# Sourced by scripts/services.sh after postgres.sh; defines start_ferretdb, stop_ferretdb,
# env_ferretdb.
#
# `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` builds a binary that panics
# at start ("Invalid build/version/version.txt"): the module zip lacks the generated version
# file. So the module source is fetched through the Go proxy, the file is written, and the
# binary is built from that copy.
#
# FerretDB 1.x on PostgreSQL stores each collection as a table of `_jsonb` documents with a
# btree index on `_jsonb->'_id'`, but filters `_id` with jsonb containment (`_jsonb->'_id' @>
# $1`), which a btree cannot serve: every update, delete or find by `_id` scans the whole
# collection, so upserting n rows costs O(n^2). An event trigger gives every table FerretDB
# creates a GIN (jsonb_path_ops) index on `_jsonb->'_id'`, which serves `@>`: lookups by `_id`
# become index scans. FerretDB does not know the index (listIndexes does not show it). The
# index skips GIN's pending list (`fastupdate = off`): after a bulk load every lookup would
# scan that list until a vacuum.

ferretdb_version=v1.24.2
ferretdb_port=${BACKFLOW_FERRETDB_PORT:-57017}
ferretdb_tools=${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}
ferretdb_bin="$ferretdb_tools/bin/ferretdb"
ferretdb_pg_port=${BACKFLOW_PG_PORT:-55432}

env_ferretdb() {
  # PLAIN hands the credentials to the PostgreSQL backend, which checks them.
  echo "export BACKFLOW_TEST_MONGODB_URL='mongodb://backflow:backflow@127.0.0.1:${ferretdb_port}/?authMechanism=PLAIN'"
}

install_ferretdb() {
  if [ -x "$ferretdb_bin" ] && "$ferretdb_bin" --version 2>/dev/null | grep -q "$ferretdb_version"; then
    return
  fi
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="$PATH:/usr/local/go/bin"
  fi
  if ! command -v go >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q golang-go >/dev/null
  fi
  local module src
  module=$(cd / && GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@${ferretdb_version}" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  if [ -z "$module" ] || [ ! -d "$module" ]; then
    echo "could not download the FerretDB ${ferretdb_version} module" >&2
    exit 1
  fi
  src="$ferretdb_tools/src/ferretdb-${ferretdb_version}"
  rm -rf "$src"
  mkdir -p "$ferretdb_tools/src" "$ferretdb_tools/bin"
  cp -r "$module" "$src"
  chmod -R u+w "$src"
  echo "$ferretdb_version" > "$src/build/version/version.txt"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -o "$ferretdb_bin" ./cmd/ferretdb)
}

ferretdb_answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/${ferretdb_port}") 2>/dev/null
}

start_ferretdb() {
  local state="$dir/ferretdb"
  install_ferretdb
  mkdir -p "$state"
  PGPASSWORD=postgres psql -h 127.0.0.1 -p "$ferretdb_pg_port" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1 <<SQL >/dev/null
SELECT 'CREATE DATABASE ferretdb OWNER backflow'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'ferretdb') \gexec
SQL
  PGPASSWORD=postgres psql -h 127.0.0.1 -p "$ferretdb_pg_port" -U postgres -d ferretdb -qtA -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
CREATE OR REPLACE FUNCTION backflow_ferretdb_id_index() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  created record;
BEGIN
  FOR created IN
    SELECT c.oid::regclass AS tbl
    FROM pg_event_trigger_ddl_commands() AS d
    JOIN pg_class AS c ON c.oid = d.objid
    WHERE d.command_tag = 'CREATE TABLE' AND d.object_type = 'table'
      AND c.relname NOT LIKE '\_ferretdb\_%'
      AND EXISTS (SELECT 1 FROM pg_attribute AS a WHERE a.attrelid = c.oid AND a.attname = '_jsonb')
  LOOP
    EXECUTE format('CREATE INDEX ON %s USING gin ((_jsonb -> ''_id'') jsonb_path_ops) '
                   'WITH (fastupdate = off)', created.tbl);
  END LOOP;
END
$fn$;
SELECT 'CREATE EVENT TRIGGER backflow_ferretdb_id_index ON ddl_command_end '
       'WHEN TAG IN (''CREATE TABLE'') EXECUTE FUNCTION backflow_ferretdb_id_index()'
WHERE NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'backflow_ferretdb_id_index') \gexec
SQL
  if ferretdb_answers; then
    echo "ferretdb already running on 127.0.0.1:${ferretdb_port}"
    return
  fi
  nohup "$ferretdb_bin" \
    --listen-addr="127.0.0.1:${ferretdb_port}" \
    --handler=postgresql \
    --postgresql-url="postgres://backflow:backflow@127.0.0.1:${ferretdb_pg_port}/ferretdb" \
    --state-dir="$state" \
    --telemetry=disable \
    --debug-addr=- \
    --log-level=warn \
    >"$state/server.log" 2>&1 </dev/null &
  echo $! >"$state/ferretdb.pid"
  local tries=0
  until ferretdb_answers; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
      echo "ferretdb did not start; see $state/server.log" >&2
      tail -n 20 "$state/server.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  echo "ferretdb started on 127.0.0.1:${ferretdb_port}"
}

stop_ferretdb() {
  local pidfile="$dir/ferretdb/ferretdb.pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}
