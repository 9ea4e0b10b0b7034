#!/usr/bin/env bash
# Builds `cyberwave-frpc-standin:local`, a stand-in for the frpc image (no registry here): a
# busybox script run as `frpc -c FILE` that checks the config names the relay and has every
# field the edge must write, prints a coloured login line carrying the relay token (so the
# tests can check the token is redacted wherever the edge repeats frpc's words), then holds a
# TCP connection to the relay like frpc's control connection: when the relay refuses or drops
# it, the stand-in exits 1, as frpc with `loginFailExit = true` does. SIGTERM ends it cleanly.
set -euo pipefail
IMAGE="${1:-cyberwave-frpc-standin:local}"
. "$(dirname "$0")/../../examples/local/busybox-rootfs.sh"
busybox_rootfs sh cat echo grep sed nc printf sleep
cat > "$root/frpc.sh" <<'FRPC'
#!/bin/sh
trap 'echo "[I] frpc stand-in: SIGTERM, bye"; exit 0' TERM
[ "$1" = "-c" ] && [ -n "$2" ] || { echo "[E] usage: frpc -c FILE"; exit 2; }
cfg="$2"
[ -r "$cfg" ] || { echo "[E] cannot read $cfg"; exit 3; }
for k in serverAddr serverPort loginFailExit metadatas.session_id metadatas.token \
         transport.tls.enable log.to '\[\[proxies\]\]' name type localIP localPort remotePort; do
  grep -q "^$k" "$cfg" || { echo "[E] $cfg: $k missing"; exit 4; }
done
host=$(sed -n 's/^serverAddr = "\(.*\)"$/\1/p' "$cfg")
port=$(sed -n 's/^serverPort = \([0-9]*\)$/\1/p' "$cfg")
token=$(sed -n 's/^metadatas.token = "\(.*\)"$/\1/p' "$cfg")
[ -n "$host" ] && [ -n "$port" ] || { echo "[E] $cfg names no relay"; exit 5; }
printf '\033[1;34m[I]\033[0m try to connect to server %s:%s with token %s\n' "$host" "$port" "$token"
nc "$host" "$port" </dev/null &
wait $!
echo "[E] login to the server failed: connection to $host:$port closed (token $token)"
exit 1
FRPC
chmod 0755 "$root/frpc.sh"
old="$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)"
tar -C "$root" -c . | docker import --change 'ENTRYPOINT ["/bin/sh", "/frpc.sh"]' - "$IMAGE" >/dev/null
new="$(docker image inspect -f '{{.Id}}' "$IMAGE")"
if [ -n "$old" ] && [ "$old" != "$new" ]; then docker rmi "$old" >/dev/null 2>&1 || true; fi
echo "built $IMAGE"
