#!/bin/sh
# scripts/wine/test.sh [GO TEST FLAGS]: the Windows engine's own tests
# (packages engine, installer, inventory; GOOS=windows GOARCH=amd64) run
# under Wine through go_windows_amd64_exec, and the Windows builds of the
# engine and the firewall package. It installs nothing: it needs wine64
# (Debian: apt-get install wine64) and Go; without wine64 it says so and
# exits 0 unless FLEETUP_NO_SKIP is set. The first run makes the Wine
# prefix ($FLEETUP_WINEPREFIX, default /tmp/fleetup-wine-$UID), about half
# a minute; after that the tests take under a minute.
set -eu
cd "$(dirname "$0")/../.."
export PATH="$PATH:/usr/local/go/bin"
if ! command -v wine64 >/dev/null 2>&1 && [ ! -x /usr/lib/wine/wine64 ]; then
	echo "scripts/wine/test.sh: wine64 is not installed: Windows tests skipped" >&2
	[ -z "${FLEETUP_NO_SKIP:-}" ] || exit 1
	exit 0
fi
export GOOS=windows GOARCH=amd64
go build -o /dev/null ./cmd/fleetup-engine && go build ./firewall/
go vet ./engine/ ./installer/ ./inventory/
go test -exec "$PWD/scripts/wine/go_windows_amd64_exec" "$@" ./engine/ ./installer/ ./inventory/
