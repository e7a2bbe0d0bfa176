#!/usr/bin/env bash
# Starts (or stops) the servers the test suite talks to, on loopback only.
#
#   scripts/services.sh start   install if needed, then start every service (idempotent)
#   scripts/services.sh stop    stop them
#   scripts/services.sh env     print the environment the tests read
#
# State lives under $BACKFLOW_SERVICES_DIR (default /tmp/backflow-services), never in the clone.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

here=$(cd "$(dirname "$0")" && pwd)
dir=${BACKFLOW_SERVICES_DIR:-/tmp/backflow-services}

# Each service is one file in scripts/services.d/NAME.sh defining start_NAME, stop_NAME and
# env_NAME; they start in the order below (PostgreSQL first: other services may use it).
services=(postgres mariadb firestore ferretdb jaeger fakesnow bigquery s3)
for name in "${services[@]}"; do
  # shellcheck source=/dev/null
  . "$here/services.d/$name.sh"
done

case "${1:-start}" in
  start)
    "$here/install-deps.sh"
    for name in "${services[@]}"; do "start_$name"; done
    ;;
  stop) for name in "${services[@]}"; do "stop_$name"; done ;;
  env) for name in "${services[@]}"; do "env_$name"; done ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
