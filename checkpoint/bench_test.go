package checkpoint

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// BenchmarkSave measures one shard saving alone: every Save is its own
// synced transaction. cpu-us/op is the process's CPU per Save, the
// kernel's share of the syncs and the runtime's wake-ups included: what a
// stream pays per batch for its checkpoint.
func BenchmarkSave(b *testing.B) {
	f, _ := openTemp(b)
	ctx := b.Context()
	seq := 0
	cpu0 := processCPU()
	for b.Loop() {
		seq++
		if err := f.Save(ctx, "m", "shardId-000000000000", event.Position{Seq: strconv.Itoa(seq)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}

// processCPU is the CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSaveParallel measures many shards saving at once (64 goroutines
// per CPU, each its own shard): their Saves share synced transactions, so
// ns/op falls well below one sync.
func BenchmarkSaveParallel(b *testing.B) {
	f, _ := openTemp(b)
	ctx := b.Context()
	var shards atomic.Int64
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		shard := fmt.Sprintf("shardId-%012d", shards.Add(1))
		seq := 0
		for pb.Next() {
			seq++
			if err := f.Save(ctx, "m", shard, event.Position{Seq: strconv.Itoa(seq)}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
