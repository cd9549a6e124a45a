package bmcsim

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that a closed BMC leaves no goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
