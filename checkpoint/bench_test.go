package checkpoint

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/esmd-dev/esmd/event"
)

// BenchmarkSave measures one shard saving alone: every Save is its own
// synced transaction.
func BenchmarkSave(b *testing.B) {
	f, _ := openTemp(b)
	ctx := b.Context()
	seq := 0
	for b.Loop() {
		seq++
		if err := f.Save(ctx, "m", "shardId-000000000000", event.Position{Seq: strconv.Itoa(seq)}); err != nil {
			b.Fatal(err)
		}
	}
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
