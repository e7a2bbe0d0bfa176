# fakesnow's HTTP server from PyPI: a local stand-in for Snowflake's REST protocol (login,
# query requests, Arrow IPC results over DuckDB), for the Snowflake source's tests and benchmark.
# Sourced by scripts/services.sh; defines start_fakesnow, stop_fakesnow, env_fakesnow.
# State is in memory: a restart empties it.

fakesnow_port=${BACKFLOW_FAKESNOW_PORT:-58443}
fakesnow_version=0.12.1
fakesnow_tools=${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}
fakesnow_venv="$fakesnow_tools/fakesnow-venv"

env_fakesnow() {
  echo "export BACKFLOW_TEST_SNOWFLAKE_URL=http://127.0.0.1:${fakesnow_port}"
}

# Whether the server accepts connections on its port (uvicorn listens once the app is ready).
fakesnow_answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/${fakesnow_port}") 2>/dev/null
}

start_fakesnow() {
  local state="$dir/fakesnow"
  mkdir -p "$state"
  if [ "$("$fakesnow_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("fakesnow"))' 2>/dev/null)" != "$fakesnow_version" ]; then
    echo "installing fakesnow $fakesnow_version into $fakesnow_venv"
    mkdir -p "$fakesnow_tools"
    python3 -m venv "$fakesnow_venv"
    # The 5.x Python connector breaks fakesnow; the server extra brings uvicorn/starlette.
    "$fakesnow_venv/bin/pip" install -q --disable-pip-version-check \
      "fakesnow[server]==$fakesnow_version" "snowflake-connector-python<5"
  fi
  if fakesnow_answers; then
    echo "fakesnow already running on 127.0.0.1:${fakesnow_port}"
    return
  fi
  # `-s` serves HTTP, on loopback only.
  nohup "$fakesnow_venv/bin/python" -m fakesnow -s --host 127.0.0.1 -p "$fakesnow_port" >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  local tries=0
  until fakesnow_answers; do
    tries=$((tries + 1))
    if [ "$tries" -ge 300 ] || ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "fakesnow did not start; see $state/server.log" >&2
      tail -n 20 "$state/server.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "fakesnow started on 127.0.0.1:${fakesnow_port}"
}

stop_fakesnow() {
  local pidfile="$dir/fakesnow/pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}
