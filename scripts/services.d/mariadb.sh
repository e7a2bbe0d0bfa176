# MariaDB from Debian's packages: the MySQL/MariaDB connector's tests and benchmark.
# Its own instance (datadir under $dir/mariadb, TCP on 127.0.0.1 only), never the system one.
# Sourced by scripts/services.sh; defines start_mariadb, stop_mariadb, env_mariadb.

mariadb_port=${BACKFLOW_MARIADB_PORT:-53306}

env_mariadb() {
  echo "export BACKFLOW_TEST_MYSQL_URL=mysql://backflow:backflow@127.0.0.1:${mariadb_port}/backflow"
}

mariadb_alive() {
  mariadb-admin --no-defaults --protocol=tcp -h 127.0.0.1 -P "$mariadb_port" -u backflow -pbackflow \
    --connect-timeout=2 ping >/dev/null 2>&1
}

start_mariadb_server() {
  local data="$1"
  mkdir -p "$data"
  cat > "$dir/mariadb.cnf" <<CONF
[mariadbd]
datadir = $data/db
socket = $data/mariadb.sock
pid-file = $data/mariadb.pid
log-error = $data/server.log
bind-address = 127.0.0.1
port = ${mariadb_port}
skip-name-resolve
local-infile = 1
character-set-server = utf8mb4
collation-server = utf8mb4_bin
max_allowed_packet = 64M
max_connections = 300
innodb_buffer_pool_size = 512M
innodb_log_file_size = 512M
innodb_flush_log_at_trx_commit = 0
sync_binlog = 0
CONF
  if [ "$(id -u)" = 0 ]; then chown -R mysql:mysql "$data"; fi
  local user_opt=()
  if [ "$(id -u)" = 0 ]; then user_opt=(--user=mysql); fi
  if [ ! -d "$data/db/mysql" ]; then
    rm -rf "$data/db"
    mariadb-install-db --defaults-file="$dir/mariadb.cnf" "${user_opt[@]}" \
      --auth-root-authentication-method=normal --skip-test-db >"$data/install.log" 2>&1 || {
        echo "mariadb-install-db failed; see $data/install.log" >&2
        tail -n 20 "$data/install.log" >&2
        exit 1
      }
  fi
  # mariadbd-safe would restart it behind our back; run the server itself in the background.
  nohup /usr/sbin/mariadbd --defaults-file="$dir/mariadb.cnf" "${user_opt[@]}" >/dev/null 2>&1 &
  local tries=0
  until mariadb-admin --no-defaults -S "$data/mariadb.sock" -u root --connect-timeout=2 ping >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
      echo "mariadb did not start; see $data/server.log" >&2
      tail -n 20 "$data/server.log" >&2 || true
      exit 1
    fi
    sleep 1
  done
  echo "mariadb started on 127.0.0.1:${mariadb_port}"
}

start_mariadb() {
  local data="$dir/mariadb"
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server mariadb-client >/dev/null
  fi
  if mariadb_alive; then
    echo "mariadb already running on 127.0.0.1:${mariadb_port}"
  else
    start_mariadb_server "$data"
  fi
  # Idempotent, and run even when the server was already up, so an interrupted first start
  # still ends with the user and database in place.
  mariadb --no-defaults -S "$data/mariadb.sock" -u root <<SQL
CREATE DATABASE IF NOT EXISTS backflow CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
CREATE USER IF NOT EXISTS 'backflow'@'127.0.0.1' IDENTIFIED BY 'backflow';
CREATE USER IF NOT EXISTS 'backflow'@'localhost' IDENTIFIED BY 'backflow';
GRANT ALL PRIVILEGES ON *.* TO 'backflow'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'backflow'@'localhost' WITH GRANT OPTION;
SQL
}

stop_mariadb() {
  local data="$dir/mariadb"
  if [ -S "$data/mariadb.sock" ]; then
    mariadb-admin --no-defaults -S "$data/mariadb.sock" -u root shutdown >/dev/null 2>&1 || true
  fi
}
