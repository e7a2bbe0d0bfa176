# PostgreSQL from Debian's packages: the store of the production control plane, the
# PostgreSQL (and CockroachDB-dialect, Redshift-dialect) connector tests.
# Sourced by scripts/services.sh; defines start_postgres, stop_postgres, env_postgres.

pg_port=${BACKFLOW_PG_PORT:-55432}
pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -n 1)" 2>/dev/null || true)

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

env_postgres() {
  echo "export BACKFLOW_TEST_POSTGRES_URL=postgres://backflow:backflow@127.0.0.1:${pg_port}/backflow"
}

start_postgres() {
  local data="$dir/postgres"
  if [ -z "$pg_bin" ]; then pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/postgres | sort -V | tail -n 1)"); fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir" 2>/dev/null || chmod 1777 "$dir"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    local pw; pw=$(mktemp); echo postgres > "$pw"; chmod 644 "$pw"
    as_postgres "$pg_bin/initdb" -D "$data" -U postgres --pwfile="$pw" -A scram-sha-256 -E UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pw"
    cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = ${pg_port}
unix_socket_directories = '$data'
max_connections = 300
shared_buffers = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
max_wal_size = 4GB
CONF
  fi
  if pg_isready -q -h 127.0.0.1 -p "$pg_port" -t 2; then
    echo "postgres already running on 127.0.0.1:${pg_port}"
  else
    # A server killed a moment ago can still look alive (an unreaped pid): retry a few times;
    # pg_ctl clears a stale pid file by itself once the old process is gone.
    local tries=0
    until as_postgres "$pg_bin/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null 2>&1 \
        && pg_isready -q -h 127.0.0.1 -p "$pg_port" -t 10; do
      tries=$((tries + 1))
      if [ "$tries" -ge 10 ]; then
        echo "postgres did not start; see $data/server.log" >&2
        tail -n 20 "$data/server.log" >&2 || true
        exit 1
      fi
      sleep 2
    done
    echo "postgres started on 127.0.0.1:${pg_port}"
  fi
  PGPASSWORD=postgres psql -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -qtA -v ON_ERROR_STOP=1 <<SQL >/dev/null
SELECT 'CREATE ROLE backflow LOGIN SUPERUSER PASSWORD ''backflow'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'backflow') \gexec
SELECT 'CREATE DATABASE backflow OWNER backflow'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'backflow') \gexec
SQL
}

stop_postgres() {
  local data="$dir/postgres"
  if [ -n "$pg_bin" ] && [ -f "$data/PG_VERSION" ]; then
    as_postgres "$pg_bin/pg_ctl" -D "$data" -m fast stop >/dev/null 2>&1 || true
  fi
}

