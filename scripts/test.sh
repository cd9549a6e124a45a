#!/usr/bin/env bash
# Runs fleetup's whole test suite. As root it first installs the Debian
# packages the integration tests drive for real (OpenSSH, iptables, nftables,
# fwupd and its test plugin, rpm, ...). Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(openssh-server openssh-client sshpass sudo iproute2 iptables nftables
  fwupd fwupd-tests gcab rpm procps psmisc passwd dpkg-dev python3 util-linux hostname lftp)

if [ "$(id -u)" = 0 ]; then
  . scripts/packages.sh
  install_missing test.sh "${PACKAGES[@]}"
else
  echo "test.sh: not root: integration tests that need namespaces and sshd will skip" >&2
fi

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
go mod download
go build ./...
go vet ./...
go test -count=1 -timeout 30m "$@" ./...
