package mapping

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
)

func TestTrackerContiguousPrefix(t *testing.T) {
	tr := newTracker(3)
	tr.add([]string{"1", "2", "3", "4", "5", "6"}, []int{0, 1, 2, 0, 1, 2})
	steps := []struct {
		lane, n int
		want    string
		moved   bool
	}{
		{1, 1, "", false}, // "2" done, "1" pending
		{2, 2, "", false}, // "3","6" done
		{0, 1, "3", true}, // "1" done: prefix 1,2,3
		{0, 1, "4", true}, // "4" done; "5" pending
		{1, 1, "6", true}, // "5" done: everything
	}
	for i, s := range steps {
		got, moved := tr.resolve(s.lane, s.n)
		if got != s.want || moved != s.moved {
			t.Fatalf("step %d: resolve(%d,%d) = %q,%v; want %q,%v", i, s.lane, s.n, got, moved, s.want, s.moved)
		}
	}
	if p := tr.pending(); p != 0 {
		t.Fatalf("pending = %d, want 0", p)
	}
	tr.add([]string{"7"}, []int{1})
	if p := tr.pending(); p != 1 {
		t.Fatalf("pending = %d, want 1", p)
	}
	if got, moved := tr.resolve(1, 1); got != "7" || !moved {
		t.Fatalf("resolve after refill = %q,%v", got, moved)
	}
}

func TestFirstFailed(t *testing.T) {
	recs := []event.Record{{ID: "10"}, {ID: "11"}, {ID: "12"}, {ID: "13"}}
	tests := []struct {
		name    string
		body    string
		want    int
		wantErr bool
	}{
		{"empty body", ``, 4, false},
		{"null", `null`, 4, false},
		{"empty object", `{}`, 4, false},
		{"string response", `"done"`, 4, false},
		{"null list", `{"batchItemFailures":null}`, 4, false},
		{"empty list", `{"batchItemFailures":[]}`, 4, false},
		{"one failure", `{"batchItemFailures":[{"itemIdentifier":"12"}]}`, 2, false},
		{"lowest wins", `{"batchItemFailures":[{"itemIdentifier":"13"},{"itemIdentifier":"11"}]}`, 1, false},
		{"first record", `{"batchItemFailures":[{"itemIdentifier":"10"}]}`, 0, false},
		{"unknown id", `{"batchItemFailures":[{"itemIdentifier":"99"}]}`, 0, true},
		{"empty id", `{"batchItemFailures":[{"itemIdentifier":""}]}`, 0, true},
		{"null id", `{"batchItemFailures":[{"itemIdentifier":null}]}`, 0, true},
		{"misspelled key", `{"batchItemFailures":[{"itemIdentfier":"11"}]}`, 0, true},
		{"not json", `{"batchItemFailures":[`, 0, true},
		{"invalid bare", `oops`, 0, true},
		{"id not a string", `{"batchItemFailures":[{"itemIdentifier":11}]}`, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := firstFailed([]byte(tt.body), recs)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errMalformedResponse) {
				t.Fatalf("err %v does not wrap errMalformedResponse", err)
			}
			if got != tt.want {
				t.Fatalf("firstFailed = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestLaneForIsStable(t *testing.T) {
	for _, key := range []string{"", "a", "order-1", "ключ"} {
		l := laneFor(key, 7)
		for i := 0; i < 3; i++ {
			if laneFor(key, 7) != l {
				t.Fatalf("laneFor(%q) not stable", key)
			}
		}
		if l < 0 || l >= 7 {
			t.Fatalf("laneFor(%q) = %d out of range", key, l)
		}
	}
	seen := map[int]bool{}
	for i := 0; i < 100; i++ {
		seen[laneFor("k"+string(rune('a'+i%26))+string(rune('0'+i/26)), 4)] = true
	}
	if len(seen) != 4 {
		t.Fatalf("100 keys used %d of 4 lanes", len(seen))
	}
}

func FuzzFirstFailed(f *testing.F) {
	for _, s := range []string{``, `null`, `{}`, `"x"`, `{"batchItemFailures":[]}`,
		`{"batchItemFailures":[{"itemIdentifier":"11"}]}`, `{"batchItemFailures":[{"itemIdentifier":""}]}`,
		`{"batchItemFailures":[{"itemIdentifier":"99"},{"itemIdentifier":"10"}]}`, `{"batchItemFailures":null}`, `[1,2]`, `{`} {
		f.Add([]byte(s))
	}
	recs := []event.Record{{ID: "10"}, {ID: "11"}, {ID: "12"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := firstFailed(body, recs)
		if err != nil {
			if n != 0 || !errors.Is(err, errMalformedResponse) {
				t.Fatalf("firstFailed(%q) = %d, %v", body, n, err)
			}
			return
		}
		if n < 0 || n > len(recs) {
			t.Fatalf("firstFailed(%q) = %d out of range", body, n)
		}
	})
}

// While the lane holding the checkpoint back retries a failed batch, the
// other lanes may run up to most records ahead instead of limit.
func TestTrackerLeadPastFailure(t *testing.T) {
	tr := newTracker(2)
	// Record 0 on lane 0, records 1..9 on lane 1.
	tr.add([]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, []int{0, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	ahead := func(n int) { tr.resolve(1, n) } // lane 1 finishes n more
	steps := []struct {
		do   func()
		want bool // lane 1 may take its next batch
	}{
		{func() {}, true},                    // lane 1's next is 1 ahead of the checkpoint (none): under the limit 2
		{func() { ahead(1) }, false},         // 2 ahead, lane 0 healthy: at the limit
		{func() { tr.fail(0) }, true},        // lane 0 fails: up to most, 6
		{func() { ahead(3) }, true},          // 5 ahead: lane 1's progress leaves lane 0 failing
		{func() { ahead(1) }, false},         // 6 ahead: at most
		{func() { tr.resolve(0, 0) }, false}, // lane 0 resolves: healthy, so the limit again
		{func() { tr.resolve(0, 1) }, true},  // lane 0 done: the checkpoint is 5, lane 1's next 0 ahead
	}
	for i, st := range steps {
		st.do()
		if ok, _ := tr.lead(1, 2, 6, false); ok != st.want {
			t.Fatalf("step %d: lead = %v, want %v", i, ok, st.want)
		}
	}
}

// A lane that starts failing while the reader decides whether to wait for
// it must wake the reader: handOut takes the tracker's change channel
// before it looks at the lanes. The window is narrow, so the test opens it
// wide (many lanes to look at) and lands the failure at random times in it.
func TestHandOutSeesALaneStartFailing(t *testing.T) {
	const lanes, runs = 1000, 50
	hung := 0
	for range runs {
		r := &Runner{cfg: Config{BatchSize: 1, ParallelizationFactor: lanes}, log: slog.New(slog.DiscardHandler)}
		w := newWorker(r, event.Shard{ID: "s"}, event.Start{})
		w.backlog = make([][]share, lanes)
		seqs, laneOf := make([]string, lanes), make([]int, lanes)
		for i := range lanes {
			seqs[i], laneOf[i] = "x", i
			w.backlog[i] = []share{{recs: []event.Record{{Seq: "x"}}}}
			w.backlogged++
		}
		w.tr.add(seqs, laneOf)
		// Lanes 1.. are retrying; lane 0 is healthy, so the reader waits
		// for it, until it fails too. No lane takes anything.
		for i := 1; i < lanes; i++ {
			w.tr.fail(i)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan bool, 1)
		go func() { done <- w.handOut(ctx, false) }()
		time.Sleep(time.Duration(rand.IntN(1500)) * time.Microsecond)
		w.tr.fail(0)
		select {
		case <-done:
		case <-time.After(time.Second):
			hung++
		}
		cancel()
	}
	if hung > 0 {
		t.Fatalf("the reader stayed waiting for a lane that had started failing in %d of %d runs", hung, runs)
	}
}

// How far lanes may run past a failing one: 10,000 records, fewer when
// that many of the shard's mean size pass 16 MiB, never fewer than the
// lead every lane has.
func TestLeadPastFailure(t *testing.T) {
	for _, tc := range []struct {
		size, limit, want int64
	}{
		{0, 100, 10_000},        // no poll yet
		{500, 100, 10_000},      // small records: the record bound
		{4096, 100, 4096},       // 16 MiB of 4 KiB records
		{1 << 20, 100, 100},     // 1 MiB records: 16, below the lanes' own lead
		{1 << 20, 10, 16},       // 16 MiB
		{500, 100_000, 100_000}, // BatchSize x P above both
	} {
		r := &Runner{cfg: Config{BatchSize: 1, ParallelizationFactor: 2}, log: slog.New(slog.DiscardHandler)}
		w := newWorker(r, event.Shard{ID: "s"}, event.Start{})
		w.recSize.Store(tc.size)
		if got := w.leadPastFailure(tc.limit); got != tc.want {
			t.Errorf("mean size %d, limit %d: %d records, want %d", tc.size, tc.limit, got, tc.want)
		}
	}
}
