# Sourced by the example image scripts: `busybox_rootfs APPLET…` makes a temporary rootfs with a
# static busybox and the named applets (in $root, removed on exit). Installs Debian's
# busybox-static when missing and we are root.
busybox_rootfs() {
  BUSYBOX="${BUSYBOX:-/bin/busybox}"
  if [ ! -x "$BUSYBOX" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static >/dev/null
    else
      echo "need a static busybox at $BUSYBOX (Debian package busybox-static)" >&2
      exit 1
    fi
  fi
  root="$(mktemp -d)"
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/tmp" "$root/app"
  chmod 1777 "$root/tmp"
  cp "$BUSYBOX" "$root/bin/busybox"
  for applet in "$@"; do
    ln -s busybox "$root/bin/$applet"
  done
}
