#!/usr/bin/env bash
# Builds the tiny example driver image `cyberwave-example-driver:local` from Debian's
# busybox-static, with no registry: a rootfs tarball fed to `docker import`.
# The `:local` tag tells the edge core never to pull it.
#
# The driver (driver.sh) reads its twin file through CYBERWAVE_TWIN_JSON_FILE and then
# behaves as DRIVER_MODE says: run (default, logs a heartbeat), crash (exits 1),
# exit0 (exits 0), chatty (logs as fast as it can), lines (a few lines, blank ones and a
# 200 KB one, then exits 1), edit (after 3 s changes its twin file's fps 15 → 31, in place, as a
# driver saving a setting does, then runs), runtimeerror (prints a Python RuntimeError twice,
# then runs), park (on SIGTERM says it parks, takes a second, logs `parked`, exits 0),
# stubborn (ignores SIGTERM), quiet (runs and says nothing: the idle benchmarks), exec (runs
# $DRIVER_EXEC in its place, e.g. a program mounted from the host: the zenoh bus tests).
set -euo pipefail
IMAGE="${1:-cyberwave-example-driver:local}"
. "$(dirname "$0")/busybox-rootfs.sh"
busybox_rootfs sh cat echo sleep date env head tr wc seq true kill
cat > "$root/driver.sh" <<'DRIVER'
#!/bin/sh
case "${DRIVER_MODE:-run}" in
  # An arm that needs its second to park before it may stop (the graceful-stop tests).
  park) trap 'echo "driver: WARNING SIGTERM received, parking"; sleep 1; echo "driver: INFO parked"; exit 0' TERM ;;
  # A driver that ignores SIGTERM: only SIGKILL, after its stop timeout, ends it.
  stubborn) trap 'echo "driver: ignoring SIGTERM"' TERM ;;
  *) trap 'echo "driver: SIGTERM, bye"; exit 0' TERM ;;
esac
case "${DRIVER_MODE:-run}" in
  quiet) while true; do sleep 3600 & wait $!; done ;;
  exec) exec ${DRIVER_EXEC} ;;
esac
echo "driver: INFO starting for twin ${CYBERWAVE_TWIN_UUID} (mode ${DRIVER_MODE:-run})"
if [ -n "${CYBERWAVE_TWIN_JSON_FILE}" ] && [ -r "${CYBERWAVE_TWIN_JSON_FILE}" ]; then
  echo "driver: TWINFILE $(tr -d '\n' < "${CYBERWAVE_TWIN_JSON_FILE}")"
else
  echo "driver: ERROR cannot read twin file ${CYBERWAVE_TWIN_JSON_FILE}"
fi
case "${DRIVER_MODE:-run}" in
  crash) echo "driver: ERROR simulated crash"; exit 1 ;;
  exit0) echo "driver: INFO done, exiting cleanly"; exit 0 ;;
  chatty) i=0; while true; do i=$((i+1)); echo "driver: chatty line $i"; done ;;
  lines) echo "driver: line one"; echo ""; echo "   "; echo "driver: line two"
         head -c 200000 /dev/zero | tr '\0' x; echo; echo "driver: line three"; sleep 1; exit 1 ;;
  runtimeerror) echo "Traceback (most recent call last):"; echo "RuntimeError: camera not found"
                sleep 1; echo "RuntimeError: camera not found again" ;;
  edit) sleep 3
        c=$(cat "${CYBERWAVE_TWIN_JSON_FILE}")
        printf '%s\n' "${c/\"fps\": 15/\"fps\": 31}" > "${CYBERWAVE_TWIN_JSON_FILE}"
        echo "driver: INFO edited my twin file (fps 31)" ;;
esac
n=0
while true; do
  n=$((n+1))
  echo "driver: INFO heartbeat $n"
  sleep 5 &
  wait $!
done
DRIVER
chmod 0755 "$root/driver.sh"
old="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
tar -C "$root" -c . | docker import --change 'CMD ["/bin/sh", "/driver.sh"]' --change 'LABEL io.cyberwave.example=1' - "$IMAGE" >/dev/null
# The image this one replaces would be left dangling: remove it unless a container uses it.
new="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
if [ -n "$old" ] && [ "$old" != "$new" ]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
echo "built $IMAGE"
