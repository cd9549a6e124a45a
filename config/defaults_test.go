package config_test

import (
	"testing"

	"github.com/fleetup/fleetup/config"
	"github.com/fleetup/fleetup/depot"
	"github.com/fleetup/fleetup/wire"
)

// TestDefaultsAgree checks that config's defaults are the ones the depot
// and the engine fall back on.
func TestDefaultsAgree(t *testing.T) {
	if config.DefaultHTTPPort != depot.DefaultHTTPPort || config.DefaultHTTPSPort != depot.DefaultHTTPSPort {
		t.Errorf("config %d/%d, depot %d/%d", config.DefaultHTTPPort, config.DefaultHTTPSPort, depot.DefaultHTTPPort, depot.DefaultHTTPSPort)
	}
	if config.DefaultEnginePort != wire.DefaultPort {
		t.Errorf("config engine port %d, engine %d", config.DefaultEnginePort, wire.DefaultPort)
	}
}
