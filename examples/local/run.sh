#!/usr/bin/env bash
# Runs the edge core in local mode on this machine: two example drivers, no account needed.
#   examples/local/run.sh            # Ctrl-C stops the daemon; the drivers keep running
#   docker rm -f cyberwave-driver-0c0ffee0 cyberwave-driver-0c0ffee1   # remove them afterwards
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
"$here/build-driver-image.sh"
bin="${CYBERWAVE_EDGE_CORE:-$here/../../target/release/cyberwave-edge-core}"
[ -x "$bin" ] || (cd "$here/../.." && cargo build --release)
export CYBERWAVE_EDGE_CONFIG_DIR="${CYBERWAVE_EDGE_CONFIG_DIR:-$HOME/.cyberwave-local-example}"
exec "$bin" run --local "$here/manifest.json"
