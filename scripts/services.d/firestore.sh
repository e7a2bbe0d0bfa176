# The Node.js Firestore emulator from npm (@firestore-emulator/server, a library started by
# firestore-emulator.mjs next to this file): the Firestore connector's tests.
# Sourced by scripts/services.sh; defines start_firestore, stop_firestore, env_firestore.
# State is in memory: a restart empties the emulator.

fs_port=${BACKFLOW_FIRESTORE_PORT:-58080}
fs_version=0.3.15
fs_tools=${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}

env_firestore() {
  echo "export BACKFLOW_TEST_FIRESTORE_EMULATOR_HOST=127.0.0.1:${fs_port}"
}

# Whether something accepts TCP connections on the emulator's port.
firestore_listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/${fs_port}") 2>/dev/null
}

start_firestore() {
  local state="$dir/firestore"
  mkdir -p "$state"
  local pkg="$fs_tools/node_modules/@firestore-emulator/server/package.json"
  if [ "$(node -p "require('$pkg').version" 2>/dev/null)" != "$fs_version" ]; then
    echo "installing @firestore-emulator/server $fs_version into $fs_tools"
    mkdir -p "$fs_tools"
    npm install --prefix "$fs_tools" --no-audit --no-fund --silent \
      "@firestore-emulator/server@$fs_version" "@grpc/grpc-js@1.14.3" >/dev/null
  fi
  if firestore_listening; then
    echo "firestore emulator already running on 127.0.0.1:${fs_port}"
    return
  fi
  # The script imports the package from the tools dir, so it runs from a copy placed there.
  cp "$here/services.d/firestore-emulator.mjs" "$fs_tools/firestore-emulator.mjs"
  nohup node "$fs_tools/firestore-emulator.mjs" "$fs_port" >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  local tries=0
  until firestore_listening; do
    tries=$((tries + 1))
    if [ "$tries" -ge 100 ] || ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "firestore emulator did not start; see $state/server.log" >&2
      tail -n 20 "$state/server.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "firestore emulator started on 127.0.0.1:${fs_port}"
}

stop_firestore() {
  local pidfile="$dir/firestore/pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}
