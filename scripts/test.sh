#!/usr/bin/env bash
# Runs fleetup's whole test suite. As root it first installs the Debian
# packages the integration tests drive for real (OpenSSH, iptables, nftables,
# fwupd and its test plugin, rpm, ...). Extra arguments go to `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(openssh-server openssh-client sshpass sudo iproute2 iptables nftables
  fwupd fwupd-tests gcab rpm procps psmisc passwd dpkg-dev python3 util-linux hostname lftp
  python3-sushy redfishtool ilorest chromium samba smbclient python3-impacket wine64)

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
# The manager builds for every system its users run it on; the engine for
# Linux nodes (amd64, arm64) and Windows nodes (amd64).
for target in linux/amd64 linux/arm64 windows/amd64 windows/arm64 darwin/amd64 darwin/arm64; do
  GOOS=${target%/*} GOARCH=${target#*/} CGO_ENABLED=0 go build -o /dev/null ./cmd/fleetup
done
GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -o /dev/null ./cmd/fleetup-engine
GOOS=windows GOARCH=amd64 CGO_ENABLED=0 go build -o /dev/null ./cmd/fleetup-engine
# The packages where goroutines meet run under the race detector.
race='github.com/fleetup/fleetup/(agent|agent/.*|orchestrator|manager|depot|engine|wire|redfish|lab/bmcsim|transport/tlspin|store|web)$'
go test -count=1 -timeout 30m "$@" $(go list ./... | grep -Ev "$race")
go test -race -count=1 -timeout 30m "$@" $(go list ./... | grep -E "$race")
# The Windows engine's own tests, as Windows binaries under Wine.
scripts/wine/test.sh -count=1 "$@"
