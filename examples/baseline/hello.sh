#!/bin/sh
# fleetup example script component: records that fleetup deployed it.
set -eu
mkdir -p /var/lib/fleetup-example
printf '%s\n%s\n' "1.0.0" "deployed by fleetup (example component dev.fleetup.example.hello)" \
	> /var/lib/fleetup-example/hello
