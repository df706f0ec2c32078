package invokertest_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/invoke/execfunc"
	"github.com/esmd-dev/esmd/test/functions"
	"github.com/esmd-dev/esmd/test/invokertest"
)

func newExec(t testing.TB, timeout time.Duration) *execfunc.Invoker {
	t.Helper()
	inv, err := execfunc.New(execfunc.Config{
		Command: []string{"python3", filepath.Join(functions.PyHandlerDir(), "handler.py")},
		Timeout: timeout,
	})
	if err != nil {
		t.Fatalf("execfunc.New: %v", err)
	}
	return inv
}

func TestExec(t *testing.T) {
	invokertest.Run(t, invokertest.Target{
		Invoker: newExec(t, suiteTimeout),
		Timeout: suiteTimeout,
		Exits:   true,
	})
}
