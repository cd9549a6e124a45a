#!/usr/bin/env bash
# Runs fleetup's benchmark (bench/, see its package comment and the
# README's "Benchmarks"): fleetup against ansible-core, bare SSH and nginx on
# lab nodes of this machine, and the simulated scale-out. As root it first
# installs what the lab and the peers need (the test suite's packages,
# ansible-core, nginx; linux-perf for -perf). Extra arguments go to the
# benchmark, e.g. -nodes 5,10 -rounds 1 -only deploy,floor. It writes the
# table to stdout and bench/RESULTS.md, and copies it into the README.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(openssh-server openssh-client sudo iproute2 iptables nftables fwupd fwupd-tests
  gcab procps psmisc passwd util-linux hostname ansible-core nginx)
for a in "$@"; do
  if [ "$a" = "-perf" ]; then PACKAGES+=(linux-perf); fi
done

if [ "$(id -u)" != 0 ]; then
  echo "bench: needs root (lab nodes are network namespaces; nginx listens on loopback)" >&2
  exit 2
fi
. scripts/packages.sh
install_missing bench.sh "${PACKAGES[@]}"

export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
go run ./bench "$@"

# The README's "Benchmarks" section holds the latest table: splice
# bench/RESULTS.md (less its title) between the section's markers.
python3 - <<'PY'
import re
readme = open("README.md").read()
results = open("bench/RESULTS.md").read().split("\n", 1)[1].strip()
start, end = "<!-- bench:start -->", "<!-- bench:end -->"
i, j = readme.index(start) + len(start), readme.index(end)
open("README.md", "w").write(readme[:i] + "\n" + results + "\n" + readme[j:])
PY
echo "bench.sh: the table is in bench/RESULTS.md and the README's Benchmarks section"
