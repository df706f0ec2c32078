package invokertest_test

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/invoke/httpfunc"
	"github.com/esmd-dev/esmd/test/functions"
	"github.com/esmd-dev/esmd/test/invokertest"
)

func newHTTP(t testing.TB, timeout time.Duration) *httpfunc.Invoker {
	t.Helper()
	srv := httptest.NewServer(functions.HTTPHandler())
	t.Cleanup(srv.Close)
	inv, err := httpfunc.New(httpfunc.Config{URL: srv.URL, Timeout: timeout})
	if err != nil {
		t.Fatalf("httpfunc.New: %v", err)
	}
	return inv
}

func TestHTTP(t *testing.T) {
	invokertest.Run(t, invokertest.Target{
		Invoker:   newHTTP(t, suiteTimeout),
		Timeout:   suiteTimeout,
		Throttles: true,
	})
}
