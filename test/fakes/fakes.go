// Package fakes holds in-memory stand-ins for the engine's seams (a stream
// source, a function, a destination and a checkpoint store), for unit tests
// of the engine. Tests that prove a feature use the real servers instead.
package fakes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// Stream is an in-memory stream of shards. It is safe for concurrent use.
type Stream struct {
	mu      sync.Mutex
	shards  []*shard
	seq     int64
	enc     *event.KinesisEncoder
	changed chan struct{}
	// PollInterval is how long an idle reader waits; default 5 ms.
	PollInterval time.Duration
	// ReadLimit caps the records of one read; default 100.
	ReadLimit int
	// Release gives each read with records a ReadResult.Release that
	// counts the release and then scrambles the read's records, their
	// slice and their JSON, so that any use of them by the engine after
	// it released them shows in events or in Scrambled.
	Release bool

	reads     int              // reads with records, with Release set
	scrambled [][]event.Record // the reads released, one per Release call
}

// scramble is what a released read holds.
const scramble = "!released!"

type shard struct {
	info event.Shard
	recs []event.Record
}

var _ mapping.Source = (*Stream)(nil)

// NewStream returns a stream with n open shards named shard-0 ... shard-n-1.
func NewStream(n int) *Stream {
	s := &Stream{enc: event.NewKinesisEncoder("us-east-1", "arn:aws:kinesis:us-east-1:000000000000:stream/fake", "arn:aws:iam::000000000000:role/esmd"), changed: make(chan struct{})}
	for i := 0; i < n; i++ {
		s.shards = append(s.shards, &shard{info: event.Shard{ID: fmt.Sprintf("shard-%d", i)}})
	}
	return s
}

func (s *Stream) find(id string) *shard {
	for _, sh := range s.shards {
		if sh.info.ID == id {
			return sh
		}
	}
	return nil
}

func (s *Stream) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Put appends a record with key and data to shard id and returns its
// sequence number. Sequence numbers rise across the whole stream.
func (s *Stream) Put(id, key string, data []byte) string {
	return s.PutAt(id, key, data, time.Now())
}

// PutAt is Put with a given arrival time.
func (s *Stream) PutAt(id, key string, data []byte, arrival time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := s.find(id)
	if sh == nil || sh.info.Closed {
		panic("fakes: put to missing or closed shard " + id)
	}
	s.seq++
	seq := fmt.Sprintf("%020d", s.seq)
	sh.recs = append(sh.recs, s.enc.Encode(id, key, seq, data, arrival))
	s.notify()
	return seq
}

// Split closes shard id and adds children with the given ids.
func (s *Stream) Split(id string, children ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.find(id).info.Closed = true
	for _, c := range children {
		s.shards = append(s.shards, &shard{info: event.Shard{ID: c, Parents: []string{id}}})
	}
	s.notify()
}

// Merge closes shards a and b and adds their child.
func (s *Stream) Merge(a, b, child string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.find(a).info.Closed = true
	s.find(b).info.Closed = true
	s.shards = append(s.shards, &shard{info: event.Shard{ID: child, Parents: []string{a, b}}})
	s.notify()
}

// Shards implements mapping.Source.
func (s *Stream) Shards(ctx context.Context) ([]event.Shard, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]event.Shard, 0, len(s.shards))
	for _, sh := range s.shards {
		info := sh.info
		info.Parents = slices.Clone(info.Parents)
		out = append(out, info)
	}
	return out, nil
}

// Open implements mapping.Source.
func (s *Stream) Open(ctx context.Context, sh event.Shard, start event.Start) (mapping.ShardReader, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.find(sh.ID)
	if x == nil {
		return nil, fmt.Errorf("fakes: no shard %s", sh.ID)
	}
	pos := 0
	switch start.Type {
	case event.TrimHorizon:
	case event.Latest:
		pos = len(x.recs)
	case event.AfterSequence:
		for pos < len(x.recs) && event.CompareSeq(x.recs[pos].Seq, start.Seq) <= 0 {
			pos++
		}
	case event.AtTimestamp:
		for pos < len(x.recs) && x.recs[pos].Arrival.Before(start.Timestamp) {
			pos++
		}
	default:
		return nil, fmt.Errorf("fakes: start %s not supported", start.Type)
	}
	return &reader{s: s, id: sh.ID, pos: pos}, nil
}

type reader struct {
	s    *Stream
	id   string
	pos  int
	idle bool
}

func (r *reader) Read(ctx context.Context) (mapping.ReadResult, error) {
	if r.idle {
		iv := r.s.PollInterval
		if iv == 0 {
			iv = 5 * time.Millisecond
		}
		t := time.NewTimer(iv)
		defer t.Stop()
		r.s.mu.Lock()
		ch := r.s.changed
		r.s.mu.Unlock()
		select {
		case <-t.C:
		case <-ch:
		case <-ctx.Done():
			return mapping.ReadResult{}, ctx.Err()
		}
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	x := r.s.find(r.id)
	limit := r.s.ReadLimit
	if limit == 0 {
		limit = 100
	}
	end := min(len(x.recs), r.pos+limit)
	recs := slices.Clone(x.recs[r.pos:end])
	r.pos = end
	r.idle = len(recs) == 0
	if len(recs) == 0 && x.info.Closed {
		return mapping.ReadResult{}, mapping.ErrShardClosed
	}
	res := mapping.ReadResult{Records: recs, MillisBehind: -1}
	if r.s.Release && len(recs) > 0 {
		for i := range recs {
			recs[i].JSON = slices.Clone(recs[i].JSON)
		}
		r.s.reads++
		res.Release = func() { r.s.scramble(recs) }
	}
	return res, nil
}

func (s *Stream) scramble(recs []event.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range recs {
		for j := range recs[i].JSON {
			recs[i].JSON[j] = scramble[j%len(scramble)]
		}
		recs[i].Key, recs[i].Seq, recs[i].ID = scramble, scramble, scramble
	}
	s.scrambled = append(s.scrambled, recs)
}

// Released reports how many reads carried a Release, and how many were
// released. It fails when a released read's records changed after their
// release: the engine wrote them when it should have let go.
func (s *Stream) Released() (reads, released int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, recs := range s.scrambled {
		for i := range recs {
			if recs[i].Key != scramble || recs[i].Seq != scramble {
				return s.reads, len(s.scrambled), fmt.Errorf("fakes: a released read's record %d was changed after its release: key %q, seq %q", i, recs[i].Key, recs[i].Seq)
			}
		}
	}
	return s.reads, len(s.scrambled), nil
}

// Scrambled reports that payload holds a record of a released read.
func Scrambled(payload []byte) bool { return bytes.Contains(payload, []byte(scramble)) }

func (r *reader) Close() error { return nil }

// Checkpoints is an in-memory mapping.Checkpointer.
type Checkpoints struct {
	mu   sync.Mutex
	m    map[string]event.Position
	Err  error // returned by Save when set before use
	fail error
}

// SetFail makes every Save fail with err from now on; nil heals the store.
func (c *Checkpoints) SetFail(err error) {
	c.mu.Lock()
	c.fail = err
	c.mu.Unlock()
}

var _ mapping.Checkpointer = (*Checkpoints)(nil)

// NewCheckpoints returns an empty store.
func NewCheckpoints() *Checkpoints { return &Checkpoints{m: map[string]event.Position{}} }

// Load implements mapping.Checkpointer.
func (c *Checkpoints) Load(ctx context.Context, m, shard string) (event.Position, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[m+"/"+shard], nil
}

// Save implements mapping.Checkpointer.
func (c *Checkpoints) Save(ctx context.Context, m, shard string, p event.Position) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Err != nil {
		return c.Err
	}
	if c.fail != nil {
		return c.fail
	}
	c.m[m+"/"+shard] = p
	return nil
}

// All returns mapping m's saved positions, by shard.
func (c *Checkpoints) All(ctx context.Context, m string) (map[string]event.Position, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]event.Position{}
	for k, p := range c.m {
		if shard, ok := strings.CutPrefix(k, m+"/"); ok {
			out[shard] = p
		}
	}
	return out, nil
}

// Get returns the saved position of a shard.
func (c *Checkpoints) Get(m, shard string) event.Position {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[m+"/"+shard]
}

// Destination is an in-memory mapping.Destination recording every failure.
type Destination struct {
	mu       sync.Mutex
	Failures []*event.Failure
	// Fail, when set, is called before each send; its error fails the send.
	Fail func() error
}

var _ mapping.Destination = (*Destination)(nil)

// Send implements mapping.Destination.
func (d *Destination) Send(ctx context.Context, f *event.Failure) error {
	if d.Fail != nil {
		if err := d.Fail(); err != nil {
			return err
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Failures = append(d.Failures, f)
	return nil
}

// Got returns a copy of the failures sent so far.
func (d *Destination) Got() []*event.Failure {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.Failures)
}

// Invocation is one call a Function received.
type Invocation struct {
	Records   []Rec
	Attempt   int
	RequestID string
}

// Rec is the part of a Kinesis event record a test checks.
type Rec struct {
	Key  string
	Seq  string
	Data string
}

// Function is a mapping.Invoker that decodes each Kinesis event and hands
// it to Handle. It records every invocation.
type Function struct {
	mu    sync.Mutex
	Calls []Invocation
	// Handle answers one invocation; nil means success with an empty body.
	Handle func(ctx context.Context, recs []Rec) (*mapping.Response, error)
}

var _ mapping.Invoker = (*Function)(nil)

// Invoke implements mapping.Invoker.
func (f *Function) Invoke(ctx context.Context, req *mapping.Request) (*mapping.Response, error) {
	var ev struct {
		Records []struct {
			Kinesis struct {
				PartitionKey   string `json:"partitionKey"`
				SequenceNumber string `json:"sequenceNumber"`
				Data           []byte `json:"data"`
			} `json:"kinesis"`
		}
	}
	if err := json.Unmarshal(req.Payload, &ev); err != nil {
		return nil, fmt.Errorf("fakes: bad event: %w", err)
	}
	recs := make([]Rec, len(ev.Records))
	for i, r := range ev.Records {
		recs[i] = Rec{Key: r.Kinesis.PartitionKey, Seq: r.Kinesis.SequenceNumber, Data: string(r.Kinesis.Data)}
	}
	f.mu.Lock()
	f.Calls = append(f.Calls, Invocation{Records: recs, Attempt: req.Attempt, RequestID: req.RequestID})
	f.mu.Unlock()
	if f.Handle == nil {
		return &mapping.Response{StatusCode: 200}, nil
	}
	return f.Handle(ctx, recs)
}

// Invocations returns a copy of the calls so far.
func (f *Function) Invocations() []Invocation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.Calls)
}

// Itoa is strconv.Itoa, for building keys in tests.
func Itoa(i int) string { return strconv.Itoa(i) }
