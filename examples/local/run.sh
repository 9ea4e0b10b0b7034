#!/usr/bin/env bash
# The edge core in local mode on this machine: two example drivers from manifest.json, no
# account, no backend, no broker. Needs Docker and a Rust toolchain (https://rustup.rs).
#
#   examples/local/run.sh          # build what is missing or stale, run the daemon (Ctrl-C stops it;
#                                  # the driver containers keep running, as on a robot)
#   examples/local/run.sh status   # (another terminal) the daemon's report for this demo
#   examples/local/run.sh stop     # stop the daemon and remove the demo's containers and image
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
image=cyberwave-example-driver:local
# Its own config dir, so the demo never touches a real ~/.cyberwave.
export CYBERWAVE_EDGE_CONFIG_DIR="${CYBERWAVE_EDGE_CONFIG_DIR:-$HOME/.cyberwave-local-example}"
bin="${CYBERWAVE_EDGE_CORE:-$repo/target/release/cyberwave-edge-core}"
containers() { docker ps -aq --filter label=io.cyberwave.edge.created-by --filter name=cyberwave-driver-0c0ffee; }

build() {
  command -v docker >/dev/null || { echo "run.sh: Docker is needed (https://docs.docker.com/engine/install/)" >&2; exit 1; }
  if [ -z "${CYBERWAVE_EDGE_CORE:-}" ]; then
    command -v cargo >/dev/null || { echo "run.sh: a Rust toolchain is needed: https://rustup.rs" >&2; exit 1; }
    [ -x "$bin" ] || echo "run.sh: building the release binary (the first build takes a few minutes)…"
    (cd "$repo" && cargo build --release --quiet)   # quick when nothing changed
  fi
  [ -n "$(docker images -q "$image")" ] || "$here/build-driver-image.sh" "$image"
}

case "${1:-run}" in
  run)
    build
    echo "run.sh: config dir $CYBERWAVE_EDGE_CONFIG_DIR; in another terminal: examples/local/run.sh status"
    exec "$bin" run --local "$here/manifest.json"
    ;;
  status)
    exec "$bin" status "${@:2}"
    ;;
  stop)
    pkill -TERM -f "^$bin run --local" 2>/dev/null || true
    ids="$(containers)"
    [ -z "$ids" ] || docker rm -f -v $ids >/dev/null
    docker rmi "$image" >/dev/null 2>&1 || true
    echo "run.sh: stopped; demo containers and image removed (config dir $CYBERWAVE_EDGE_CONFIG_DIR kept)"
    ;;
  *)
    echo "usage: examples/local/run.sh [run|status [--json]|stop]" >&2
    exit 2
    ;;
esac
