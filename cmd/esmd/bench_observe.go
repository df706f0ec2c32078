package main

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
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

// bitset is a set of record numbers.
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

// shardSets holds a bitset of record numbers per shard index.
type shardSets []bitset

// set adds record n of shard and reports whether it was there.
func (s *shardSets) set(shard int, n int64) (was bool) {
	for len(*s) <= shard {
		*s = append(*s, nil)
	}
	return (*s)[shard].set(n)
}

// batchRecord is one record of an invocation, as the observer reads it back
// from the event.
type batchRecord struct {
	// shard and n name the record (n from 1); n is 0 when the event does
	// not say, and the record is then counted but not told apart.
	shard int
	n     int64
	id    string // its itemIdentifier; read only with ReportBatchItemFailures
	// data is what the record's data says of itself, when parsed: it
	// holds the key and per-key number that order checks need.
	data   generator.Data
	parsed bool
}

// observer is the invoker esmd bench puts in front of the function: it
// injects faults, forwards the rest, and observes every batch and outcome.
// It counts records by their shard and sequence number, which every event
// names, so that it counts them whatever their data; it checks per-key
// order and end-to-end latency on the records whose data is the
// generator's JSON (see generator.ParseData). It is safe for concurrent
// use.
type observer struct {
	next   mapping.Invoker
	faults faults
	// partial is ReportBatchItemFailures: a response's batchItemFailures
	// fail the records from the first one named, as the engine does.
	partial bool
	// poison reports the generator's poison records; nil for none.
	poison func(shard int, n int64) bool
	start  time.Time

	rmu sync.Mutex
	rng *rand.Rand

	inflight    atomic.Int64
	maxInflight atomic.Int64

	mu sync.Mutex
	// delivered holds the records that reached the function, succeeded
	// those that succeeded; lastOK is the highest per-key number that
	// succeeded, per key.
	delivered shardSets
	succeeded shardSets
	lastOK    map[string]int64

	deliveredRecords int64 // every record forwarded, repeats included
	duplicates       int64 // records forwarded that had been forwarded before
	okRecords        int64 // distinct records that succeeded
	okAgain          int64 // records that succeeded again
	orderViolations  int64 // successes of a key's record after a later one of it
	okBatches        int64 // invocations whose every record succeeded
	partialBatches   int64 // invocations whose response failed some records
	reportedFailed   int64 // records those responses failed, from the first named on
	invocations      int64
	functionErrors   int64
	throttles        int64
	invokeErrors     int64
	unparsed         int64 // distinct records delivered whose data is not the generator's JSON
	injected         struct{ poison, throttle, slow, timeout, duplicate int64 }
	invokeLat        hist
	e2eLat           hist
	series           []second
	timeline         timeline
	lastNote         time.Duration // when noteStats last ran, from start
}

func newObserver(next mapping.Invoker, f faults, seed int64) *observer {
	return &observer{
		next: next, faults: f, start: time.Now(),
		rng:    rand.New(rand.NewPCG(uint64(seed), 0x65736d64)),
		lastOK: map[string]int64{},
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

// scan reads the records of an event back.
func (o *observer) scan(payload []byte) []batchRecord {
	var recs []batchRecord
	_ = generator.ScanRecords(payload, func(r generator.EventRecord) {
		br := batchRecord{shard: r.Shard, n: r.N}
		br.data, br.parsed = generator.ParseData(r.Data)
		if o.partial {
			br.id = string(r.ID)
		}
		recs = append(recs, br)
	})
	return recs
}

// isPoison reports that r is a poison record: the generator says so from
// its place, or else its data does.
func (o *observer) isPoison(r batchRecord) bool {
	if o.poison != nil && r.n > 0 {
		return o.poison(r.shard, r.n)
	}
	return r.parsed && r.data.Poison
}

// Invoke implements mapping.Invoker.
func (o *observer) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	recs := o.scan(req.Payload)
	f := o.faults
	poison := f.Poison > 0 && slices.ContainsFunc(recs, o.isPoison)
	o.mu.Lock()
	o.invocations++
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
	ok := len(recs)
	if o.partial {
		var body []byte
		if resp != nil {
			body = resp.Body
		}
		k, perr := mapping.FirstFailed(body, len(recs), func(i int) string { return recs[i].id })
		if perr != nil {
			// The engine fails the whole batch as a function error.
			o.functionErrors++
			return resp, nil
		}
		if k < len(recs) {
			o.partialBatches++
			o.reportedFailed += int64(len(recs) - k)
			ok = k
		}
	}
	sec := o.at(done)
	if ok == len(recs) {
		o.okBatches++
		sec.Batches++
	}
	pt := o.timeline.at(done.Sub(o.start))
	for _, r := range recs[:ok] {
		if r.n > 0 && o.succeeded.set(r.shard, r.n) {
			o.okAgain++
			continue
		}
		o.okRecords++
		sec.Records++
		pt.records++
		if !r.parsed {
			continue
		}
		d := r.data
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

func (o *observer) noteDelivered(recs []batchRecord) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range recs {
		o.deliveredRecords++
		if r.n == 0 {
			continue
		}
		if o.delivered.set(r.shard, r.n) {
			o.duplicates++
		} else if !r.parsed {
			o.unparsed++
		}
	}
}

// resolved is how many distinct records succeeded.
func (o *observer) resolved() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.okRecords
}

// noteStats adds the engine's retry and bisect counts since the last call
// to the current second of the series, and spread over the time since the
// last call to the timeline.
func (o *observer) noteStats(retries, bisects int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	now := time.Now()
	s := o.at(now)
	s.Retries += retries
	s.Bisects += bisects
	el := now.Sub(o.start)
	o.timeline.spread(o.lastNote, el, float64(retries), float64(bisects))
	o.lastNote = el
}

// timelineWidths are the bucket widths a timeline may have, finest first:
// each divides the next, so that buckets merge whole.
var timelineWidths = []time.Duration{
	10 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond,
	time.Second, 2 * time.Second, 10 * time.Second, 20 * time.Second, time.Minute, 2 * time.Minute,
	10 * time.Minute, 20 * time.Minute, time.Hour,
}

// maxTimelineBuckets bounds a timeline: when a run outgrows it, buckets
// merge into the next width.
const maxTimelineBuckets = 2000

// point is what happened in one bucket of a timeline.
type point struct {
	records, retries, bisects, failures float64
}

// timeline holds what happened during a run in buckets of one width, the
// finest of timelineWidths that keeps at most maxTimelineBuckets (the
// widest beyond). Its zero value is empty, at the finest width.
type timeline struct {
	wi  int // the width is timelineWidths[wi]
	pts []point
}

func (t *timeline) width() time.Duration { return timelineWidths[t.wi] }

// at returns the bucket of offset d from the start of the run.
func (t *timeline) at(d time.Duration) *point {
	d = max(d, 0)
	for int(d/t.width()) >= maxTimelineBuckets && t.wi < len(timelineWidths)-1 {
		f := int(timelineWidths[t.wi+1] / t.width())
		merged := make([]point, (len(t.pts)+f-1)/f)
		for i, p := range t.pts {
			m := &merged[i/f]
			m.records += p.records
			m.retries += p.retries
			m.bisects += p.bisects
			m.failures += p.failures
		}
		t.pts, t.wi = merged, t.wi+1
	}
	i := int(d / t.width())
	for len(t.pts) <= i {
		t.pts = append(t.pts, point{})
	}
	return &t.pts[i]
}

// spread adds retries and bisects that happened over [from, to), evenly.
func (t *timeline) spread(from, to time.Duration, retries, bisects float64) {
	if retries == 0 && bisects == 0 {
		return
	}
	if to <= from {
		p := t.at(from)
		p.retries += retries
		p.bisects += bisects
		return
	}
	t.at(to) // the width to, and so every offset before it, fits in
	w := t.width()
	for s := from; s < to; {
		e := min((s/w+1)*w, to)
		frac := float64(e-s) / float64(to-from)
		p := t.at(s)
		p.retries += retries * frac
		p.bisects += bisects * frac
		s = e
	}
}

// timelinePoints is how many points a chart aims for at least: the
// bucket width is the widest that still gives as many.
const timelinePoints = 20

// rates is a run's timeline as rates per second. Bucket i covers
// [i·BucketMS, (i+1)·BucketMS) milliseconds from the start, but the last,
// which ends with the run (at Seconds): it is half a bucket to one and a
// half long (or the whole run, when that is shorter), and its rates are
// over its own length.
type rates struct {
	BucketMS float64   `json:"bucket_ms"`
	Seconds  float64   `json:"seconds"`
	Records  []float64 `json:"records"`
	Retries  []float64 `json:"retries"`
	Bisects  []float64 `json:"bisects"`
	Failures []float64 `json:"failure_records"`
}

// rates returns the timeline of a run that lasted total. What happened
// after total (while draining) counts in the last bucket.
func (t *timeline) rates(total time.Duration) rates {
	if total <= 0 {
		return rates{}
	}
	w := t.width()
	for i := t.wi + 1; i < len(timelineWidths) && total/timelineWidths[i] >= timelinePoints; i++ {
		w = timelineWidths[i]
	}
	n := max(int((total+w/2)/w), 1)
	r := rates{BucketMS: float64(w) / float64(time.Millisecond), Seconds: total.Seconds(),
		Records: make([]float64, n), Retries: make([]float64, n), Bisects: make([]float64, n), Failures: make([]float64, n)}
	per := int(w / t.width())
	for k, p := range t.pts {
		i := min(k/per, n-1)
		r.Records[i] += p.records
		r.Retries[i] += p.retries
		r.Bisects[i] += p.bisects
		r.Failures[i] += p.failures
	}
	for i := range n {
		length := w
		if i == n-1 {
			length = total - time.Duration(n-1)*w
		}
		secs := length.Seconds()
		r.Records[i] /= secs
		r.Retries[i] /= secs
		r.Bisects[i] /= secs
		r.Failures[i] /= secs
	}
	return r
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
	now := time.Now()
	d.obs.at(now).Failures++
	d.obs.timeline.at(now.Sub(d.obs.start)).failures++
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
