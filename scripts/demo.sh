#!/usr/bin/env bash
# fleetup's main job on its embedded defaults: build fleetup and its
# engine, then deploy the example baseline (examples/baseline: a firmware
# cabinet for fwupd's test device, built by this project, and a script
# component) to this machine, and report what changed.
#
# A fresh machine has no firmware device that is safe to flash, so the demo
# turns on fwupd's test device ("Integrated Webcam", 1.2.2 at every start)
# in a private fwupd configuration under .demo/ (FWUPD_SYSCONFDIR and
# FWUPD_LOCALSTATEDIR): the machine's own fwupd configuration is not
# touched. As root it installs fwupd first when it is missing.
# Extra arguments go to `fleetup deploy` (e.g. --dry-run, --json).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

if ! command -v fwupdtool >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "demo: installing fwupd"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends fwupd >/dev/null
  else
    echo "demo: fwupdtool is missing; run as root (it installs fwupd) or apt-get install fwupd" >&2
    exit 2
  fi
fi

mkdir -p bin
go build -trimpath -ldflags=-s -o bin/fleetup ./cmd/fleetup
CGO_ENABLED=0 go build -trimpath -ldflags=-s -o bin/fleetup-engine ./cmd/fleetup-engine

demo="$PWD/.demo"
mkdir -p "$demo/etc/fwupd" "$demo/var"
printf '[fwupd]\nTestDevices=true\n' > "$demo/etc/fwupd/fwupd.conf"
export FWUPD_SYSCONFDIR="$demo/etc" FWUPD_LOCALSTATEDIR="$demo/var"

exec bin/fleetup deploy --baseline examples/baseline --fwupd-plugins test "$@"
