# An S3-compatible server for the snapshot store's tests (snapshots and write journals in
# object storage): moto's standalone server from PyPI, in its own venv under the tools dir.
# Moto is used because it installs from PyPI in seconds, which keeps a fresh CI machine fast,
# and it implements the S3 REST API the snapshot store uses, multipart uploads included.
# Sourced by scripts/services.sh; defines start_s3, stop_s3, env_s3.
#
# State is in memory: a restart empties every bucket. Tests create a bucket of their own with
# a unique name. Moto accepts any credentials; the ones below are the tests' fixed values.
# env_s3 exports BACKFLOW_TEST_S3_* rather than AWS_*: evaluating the services' environment
# must not point the shell's own AWS tools at the test server. Tests hand these values to the
# processes and stores they create as AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ….

s3_port=${BACKFLOW_S3_PORT:-59000}
s3_moto_version=5.2.6
s3_tools=${BACKFLOW_TOOLS_DIR:-/var/tmp/backflow-tools}
s3_venv="$s3_tools/moto-venv"

env_s3() {
  echo "export BACKFLOW_TEST_S3_ENDPOINT=http://127.0.0.1:${s3_port}"
  echo "export BACKFLOW_TEST_S3_ACCESS_KEY_ID=backflow-test"
  echo "export BACKFLOW_TEST_S3_SECRET_ACCESS_KEY=backflow-test-secret"
  echo "export BACKFLOW_TEST_S3_REGION=us-east-1"
}

# Whether moto answers HTTP on its port (it listens once the app is ready).
s3_answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/${s3_port}") 2>/dev/null
}

start_s3() {
  local state="$dir/s3"
  mkdir -p "$state"
  if [ "$("$s3_venv/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null)" != "$s3_moto_version" ]; then
    echo "installing moto $s3_moto_version into $s3_venv"
    mkdir -p "$s3_tools"
    python3 -m venv "$s3_venv"
    # The server extra brings flask and werkzeug for the standalone HTTP server.
    "$s3_venv/bin/pip" install -q --disable-pip-version-check "moto[server]==$s3_moto_version"
  fi
  if s3_answers; then
    echo "s3 (moto) already running on 127.0.0.1:${s3_port}"
    return
  fi
  # Loopback only.
  nohup "$s3_venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$state/server.log" 2>&1 &
  echo $! >"$state/pid"
  local tries=0
  until s3_answers; do
    tries=$((tries + 1))
    if [ "$tries" -ge 300 ] || ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      echo "s3 (moto) did not start; see $state/server.log" >&2
      tail -n 20 "$state/server.log" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
  echo "s3 (moto) started on 127.0.0.1:${s3_port}"
}

stop_s3() {
  local pidfile="$dir/s3/pid"
  if [ -f "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  fi
}
