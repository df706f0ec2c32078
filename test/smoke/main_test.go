package smoke

import (
	"context"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/test/servers"
)

func TestMain(m *testing.M) { servers.Main(m) }

// ctx returns a context for one smoke test, cancelled at its end.
func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	t.Cleanup(cancel)
	return c
}
