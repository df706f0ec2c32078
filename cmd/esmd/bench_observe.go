package main

import (
	"context"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/generator"
)

// faults are the fault injection settings of esmd bench: each is the
// fraction of invocations it applies to.
type faults struct {
	Poison    float64       `json:"poison"`   // of records: the generator flags them; a batch holding one fails
	Throttle  float64       `json:"throttle"` // answered as a throttle, not forwarded
	Slow      float64       `json:"slow"`     // forwarded after SlowDelay
	SlowDelay time.Duration `json:"slow_delay_ns"`
	Timeout   float64       `json:"timeout"`   // forwarded, then reported as a timeout
	Duplicate float64       `json:"duplicate"` // forwarded twice
}

// hist is a log-scaled latency histogram: 16 buckets per power of two of
// microseconds, about 4.5% wide, from 1 µs to about 70 minutes.
type hist struct {
	counts [512]int64
	n      int64
	max    time.Duration
}

const histPerOctave = 16

func histBucket(d time.Duration) int {
	us := float64(d) / float64(time.Microsecond)
	if us < 1 {
		return 0
	}
	return min(int(math.Log2(us)*histPerOctave)+1, len(hist{}.counts)-1)
}

// histUpper is the upper bound of bucket i.
func histUpper(i int) time.Duration {
	return time.Duration(math.Exp2(float64(i)/histPerOctave) * float64(time.Microsecond))
}

func (h *hist) add(d time.Duration) {
	h.counts[histBucket(d)]++
	h.n++
	h.max = max(h.max, d)
}

// quantile returns the upper bound of the bucket holding quantile q, capped
// at the maximum seen.
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	var c int64
	for i, n := range h.counts {
		c += n
		if c >= rank {
			return min(histUpper(i), h.max)
		}
	}
	return h.max
}

// second is what happened in one second of a run.
type second struct {
	Records   int64 `json:"records"`
	Batches   int64 `json:"batches"`
	Retries   int64 `json:"retries"`
	Bisects   int64 `json:"bisects"`
	Failures  int64 `json:"failure_records"`
	Throttles int64 `json:"throttles"`
}

// bitset holds the per-key sequence numbers seen of one key.
type bitset []uint64

func (b *bitset) set(n int64) (was bool) {
	w, bit := int(n/64), uint64(1)<<(n%64)
	for len(*b) <= w {
		*b = append(*b, 0)
	}
	was = (*b)[w]&bit != 0
	(*b)[w] |= bit
	return was
}

// observer is the invoker esmd bench puts in front of the function: it
// injects faults, forwards the rest, and observes every batch and outcome
// by reading the generator's key and per-key number back from the data.
// It is safe for concurrent use.
type observer struct {
	next   mapping.Invoker
	faults faults
	start  time.Time

	rmu sync.Mutex
	rng *rand.Rand

	inflight    atomic.Int64
	maxInflight atomic.Int64

	mu sync.Mutex
	// delivered holds what reached the function, succeeded what
	// succeeded, lastOK the highest n that succeeded, per key.
	delivered map[string]*bitset
	succeeded map[string]*bitset
	lastOK    map[string]int64

	deliveredRecords int64 // every record forwarded, repeats included
	duplicates       int64 // records forwarded that had been forwarded before
	okRecords        int64 // distinct records that succeeded
	okAgain          int64 // records that succeeded again
	orderViolations  int64 // successes of a key's record after a later one of it
	okBatches        int64
	invocations      int64
	functionErrors   int64
	throttles        int64
	invokeErrors     int64
	unparsed         int64
	injected         struct{ poison, throttle, slow, timeout, duplicate int64 }
	invokeLat        hist
	e2eLat           hist
	series           []second
}

func newObserver(next mapping.Invoker, f faults, seed int64) *observer {
	return &observer{
		next: next, faults: f, start: time.Now(),
		rng:       rand.New(rand.NewPCG(uint64(seed), 0x65736d64)),
		delivered: map[string]*bitset{}, succeeded: map[string]*bitset{}, lastOK: map[string]int64{},
	}
}

func (o *observer) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	o.rmu.Lock()
	defer o.rmu.Unlock()
	return o.rng.Float64() < p
}

// at returns the series bucket of t; o.mu must be held.
func (o *observer) at(t time.Time) *second {
	i := max(int(t.Sub(o.start)/time.Second), 0)
	for len(o.series) <= i {
		o.series = append(o.series, second{})
	}
	return &o.series[i]
}

// Invoke implements mapping.Invoker.
func (o *observer) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	var recs []generator.Data
	bad := 0
	_ = generator.ScanEvent(req.Payload, func(b []byte) {
		d, ok := generator.ParseData(b)
		if !ok {
			bad++
			return
		}
		recs = append(recs, d)
	})
	f := o.faults
	poison := false
	if f.Poison > 0 {
		for _, d := range recs {
			poison = poison || d.Poison
		}
	}
	o.mu.Lock()
	o.invocations++
	o.unparsed += int64(bad)
	switch {
	case poison:
		o.injected.poison++
		o.functionErrors++
		o.mu.Unlock()
		return nil, &mapping.FunctionError{Kind: "Unhandled", Type: "PoisonRecord", Message: "esmd bench: the batch holds a poison record", StatusCode: 200}
	case o.roll(f.Throttle):
		o.injected.throttle++
		o.throttles++
		o.at(time.Now()).Throttles++
		o.mu.Unlock()
		return nil, &mapping.ThrottleError{StatusCode: 429}
	}
	o.mu.Unlock()

	began := time.Now()
	if o.roll(f.Slow) {
		o.mu.Lock()
		o.injected.slow++
		o.mu.Unlock()
		t := time.NewTimer(f.SlowDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	times := 1
	if o.roll(f.Duplicate) {
		times = 2
	}
	timeout := o.roll(f.Timeout)

	n := o.inflight.Add(1)
	for {
		m := o.maxInflight.Load()
		if n <= m || o.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	var resp *mapping.Response
	var err error
	for i := 0; i < times; i++ {
		o.noteDelivered(recs)
		resp, err = o.next.Invoke(ctx, req)
	}
	took := time.Since(began)
	o.inflight.Add(-1)
	done := time.Now()

	o.mu.Lock()
	defer o.mu.Unlock()
	o.invokeLat.add(took)
	if times == 2 {
		o.injected.duplicate++
	}
	if timeout && err == nil {
		o.injected.timeout++
		err = &mapping.FunctionError{Kind: "Unhandled", Message: "esmd bench: injected timeout", StatusCode: 200, Timeout: true}
		resp = nil
	}
	switch err.(type) {
	case nil:
	case *mapping.FunctionError:
		o.functionErrors++
		return resp, err
	case *mapping.ThrottleError:
		o.throttles++
		o.at(done).Throttles++
		return resp, err
	default:
		o.invokeErrors++
		return resp, err
	}
	o.okBatches++
	sec := o.at(done)
	sec.Batches++
	for _, d := range recs {
		s := o.succeeded[d.Key]
		if s == nil {
			s = &bitset{}
			o.succeeded[d.Key] = s
		}
		if s.set(d.N) {
			o.okAgain++
			continue
		}
		o.okRecords++
		sec.Records++
		if d.N < o.lastOK[d.Key] {
			o.orderViolations++
		}
		o.lastOK[d.Key] = max(o.lastOK[d.Key], d.N)
		if !d.Generated.IsZero() {
			o.e2eLat.add(done.Sub(d.Generated))
		}
	}
	return resp, nil
}

func (o *observer) noteDelivered(recs []generator.Data) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, d := range recs {
		o.deliveredRecords++
		s := o.delivered[d.Key]
		if s == nil {
			s = &bitset{}
			o.delivered[d.Key] = s
		}
		if s.set(d.N) {
			o.duplicates++
		}
	}
}

// resolved is how many distinct records succeeded.
func (o *observer) resolved() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.okRecords
}

// noteStats adds the engine's retry and bisect counts to the current
// second of the series.
func (o *observer) noteStats(retries, bisects int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.at(time.Now())
	s.Retries += retries
	s.Bisects += bisects
}

// failureSink is the destination esmd bench puts in front of the mapping's
// own (if any): it counts failure records and the records they cover, and
// forwards them.
type failureSink struct {
	next mapping.Destination
	obs  *observer

	mu      sync.Mutex
	records int64
	count   int64
	seqs    []string // shard/startSeq of each failure record
}

// Send implements mapping.Destination.
func (d *failureSink) Send(ctx context.Context, f *event.Failure) error {
	if d.next != nil {
		if err := d.next.Send(ctx, f); err != nil {
			return err
		}
	}
	d.mu.Lock()
	d.records += int64(f.BatchSize)
	d.count++
	d.seqs = append(d.seqs, f.ShardID+"/"+f.StartSeq)
	d.mu.Unlock()
	d.obs.mu.Lock()
	d.obs.at(time.Now()).Failures++
	d.obs.mu.Unlock()
	return nil
}

func (d *failureSink) counts() (count, records int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.count, d.records
}

// memCheckpoints is an in-memory mapping.Checkpointer: a bench run starts
// from nothing and keeps nothing.
type memCheckpoints struct {
	mu sync.Mutex
	m  map[string]event.Position
}

func (c *memCheckpoints) Load(ctx context.Context, m, shard string) (event.Position, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[m+"/"+shard], nil
}

func (c *memCheckpoints) Save(ctx context.Context, m, shard string, p event.Position) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]event.Position{}
	}
	c.m[m+"/"+shard] = p
	return nil
}
