#!/bin/sh
# Installs this release tarball's contents: binaries to /usr/bin, the init script, the
# supervisor and the systemd units. `--root DIR` installs under DIR instead of / (packaging,
# tests). Does not enable or start anything.
set -eu
root=""
[ "${1:-}" = "--root" ] && root="${2:?--root needs a directory}"
here="$(cd "$(dirname "$0")" && pwd)"
(cd "$here" && sha256sum -c --quiet SHA256SUMS)
install -d "$root/usr/bin" "$root/etc/init.d" "$root/etc/default" "$root/usr/lib/cyberwave-edge" "$root/lib/systemd/system"
install -m 0755 "$here/bin/cyberwave-edge-core" "$here/bin/cyberwave-cloud-node" "$root/usr/bin/"
install -m 0755 "$here/init.d/cyberwave-edge-core" "$root/etc/init.d/cyberwave-edge-core"
install -m 0755 "$here/lib/supervise" "$root/usr/lib/cyberwave-edge/supervise"
[ -e "$root/etc/default/cyberwave-edge-core" ] || install -m 0644 "$here/default/cyberwave-edge-core" "$root/etc/default/cyberwave-edge-core"
install -m 0644 "$here/systemd/"*.service "$root/lib/systemd/system/"
echo "installed into ${root:-/}"
if [ -z "$root" ]; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    echo "enable with: systemctl enable --now cyberwave-edge-core"
  else
    echo "enable with: update-rc.d cyberwave-edge-core defaults && /etc/init.d/cyberwave-edge-core start"
  fi
fi
