#!/usr/bin/env bash
# Builds the tiny example ML worker image `cyberwave-example-worker:local` from Debian's
# busybox-static, with no registry (`docker import` of a rootfs; `:local` is never pulled).
#
# It behaves like the real worker runtime as far as the edge core can see: it writes the
# readiness file at CYBERWAVE_WORKER_STATUS_PATH atomically through the phases booting →
# loading_models → ready (only when the file's directory exists, like the SDK), logs each
# worker file it "loads" with a digest of its content, and lists /app/models. A worker file
# containing CRASH makes it exit 1 after booting; NEVER_READY keeps it in loading_models.
set -euo pipefail
IMAGE="${1:-cyberwave-example-worker:local}"
. "$(dirname "$0")/busybox-rootfs.sh"
busybox_rootfs sh cat echo sleep date env head tr wc seq true kill id mv ls grep dirname basename md5sum cut
cat > "$root/worker.sh" <<'WORKER'
#!/bin/sh
trap 'echo "worker: SIGTERM, bye"; exit 0' TERM
S="${CYBERWAVE_WORKER_STATUS_PATH:-/run/cyberwave/worker-status.json}"
T0=$(date +%s)
SEQ=0
phase() {
  [ -d "$(dirname "$S")" ] || return 0
  SEQ=$((SEQ+1))
  printf '{"version":1,"phase":"%s","seq":%s,"pid":%s,"started_at":%s,"updated_at":%s}\n' \
    "$1" "$SEQ" "$$" "$T0" "$(date +%s)" > "$S.tmp.$$" && mv "$S.tmp.$$" "$S"
}
echo "worker: INFO starting as uid $(id -u) for twins ${CYBERWAVE_TWIN_UUIDS} (first ${CYBERWAVE_TWIN_UUID})"
phase booting
for f in /app/workers/*.py; do
  [ -f "$f" ] && echo "worker: LOADED $(basename "$f") $(md5sum < "$f" | cut -c1-8)"
done
if grep -q CRASH /app/workers/*.py 2>/dev/null; then echo "worker: ERROR crash requested"; exit 1; fi
phase loading_models
echo "worker: MODELS $(ls /app/models 2>/dev/null | tr '\n' ' ')"
if grep -q NEVER_READY /app/workers/*.py 2>/dev/null; then
  while true; do sleep 5 & wait $!; done
fi
phase ready
echo "worker: INFO ready"
# A line as Python's logging writes it (what `worker logs` colours on a terminal), and a blank one.
echo "$(date -u '+%Y-%m-%d %H:%M:%S') UTC.000 [INFO] [cyberwave.worker] workers loaded"
echo ""
n=0
while true; do
  n=$((n+1))
  sleep 5 &
  wait $!
done
WORKER
chmod 0755 "$root/worker.sh"
tar -C "$root" -c . | docker import --change 'CMD ["/bin/sh", "/worker.sh"]' --change 'LABEL io.cyberwave.example=1' - "$IMAGE" >/dev/null
echo "built $IMAGE"
