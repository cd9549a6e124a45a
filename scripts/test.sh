#!/usr/bin/env bash
# Runs fleetup's whole test suite. As root it first installs the Debian
# packages the integration tests drive for real (OpenSSH, iptables, nftables,
# fwupd and its test plugin, rpm, ...). Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(openssh-server openssh-client sshpass sudo iproute2 iptables nftables
  fwupd fwupd-tests gcab rpm procps psmisc passwd dpkg-dev python3 util-linux hostname lftp)

if [ "$(id -u)" = 0 ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f '${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "test.sh: installing ${missing[*]}"
    # Keep apt from starting the services it installs: the tests start
    # their own sshd per node.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod +x /usr/sbin/policy-rc.d
      trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "test.sh: not root: integration tests that need namespaces and sshd will skip" >&2
fi

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
go mod download
go build ./...
go vet ./...
go test -count=1 -timeout 30m "$@" ./...
