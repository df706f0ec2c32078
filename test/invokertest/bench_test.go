package invokertest_test

import (
	"testing"
	"time"

	"github.com/esmd-dev/esmd/invoke/execfunc"
	"github.com/esmd-dev/esmd/invoke/runtimeapi"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/functions"
	"github.com/esmd-dev/esmd/test/invokertest"
	"github.com/esmd-dev/esmd/test/servers"
)

// BenchmarkInvokers invokes a no-op function with a 64 KB event through each
// invoker from 8 goroutines, and reports invocations per second and the p50
// and p99 latency of one invocation:
//
//	go test ./test/invokertest -run '^$' -bench Invokers -benchtime 3s
//
// The exec function is a shell no-op (cat >/dev/null; printf {}), the
// others the Go or Python test function.
func BenchmarkInvokers(b *testing.B) {
	const conc = 8
	event := functions.EventOfSize(functions.Command{Do: functions.DoOK}, 64<<10)
	targets := []struct {
		name string
		new  func(b *testing.B) mapping.Invoker
	}{
		{"http", func(b *testing.B) mapping.Invoker { return newHTTP(b, 30*time.Second) }},
		{"lambda-rie", func(b *testing.B) mapping.Invoker { return newRIE(b, 30*time.Second) }},
		{"runtime-go", func(b *testing.B) mapping.Invoker {
			return newRuntime(b, runtimeapi.Config{Command: []string{functions.GoHandler(b)}, Concurrency: conc, Timeout: 30 * time.Second})
		}},
		{"runtime-python", func(b *testing.B) mapping.Invoker {
			return newRuntime(b, runtimeapi.Config{
				Command: []string{functions.Python(b), "-m", "awslambdaric", "handler.handle"},
				Dir:     functions.PyHandlerDir(), Concurrency: conc, Timeout: 30 * time.Second,
			})
		}},
		{"nats", func(b *testing.B) mapping.Invoker { return newNATS(b, servers.NATS(b), 30*time.Second) }},
		{"exec", func(b *testing.B) mapping.Invoker {
			inv, err := execfunc.New(execfunc.Config{Command: []string{"sh", "-c", "cat >/dev/null; printf {}"}, Timeout: 30 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			return inv
		}},
	}
	for _, tg := range targets {
		b.Run(tg.name, func(b *testing.B) {
			inv := tg.new(b)
			// Warm up: start processes, open connections.
			invokertest.Measure(b.Context(), inv, event, conc, 4*conc, time.Minute)
			b.ResetTimer()
			r := invokertest.Measure(b.Context(), inv, event, conc, b.N, 10*time.Minute)
			b.StopTimer()
			if r.Errors > 0 {
				b.Fatalf("%d invocations failed", r.Errors)
			}
			b.ReportMetric(r.PerSec, "inv/s")
			b.ReportMetric(float64(r.P50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(r.P99.Microseconds())/1000, "p99-ms")
			b.SetBytes(int64(len(event)))
		})
	}
}
