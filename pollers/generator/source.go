package generator

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// Config configures a Source.
type Config struct {
	// Spec describes the records; ParseURL's result, or a Spec whose zero
	// fields take their defaults.
	Spec Spec
	// InvokeIdentityARN is the invokeIdentityArn of Kinesis-shaped records;
	// arn:aws:iam::000000000000:role/esmd when empty.
	InvokeIdentityARN string
	// Logger receives lifecycle messages; discarded when nil.
	Logger *slog.Logger
}

// Source generates records. It implements mapping.Source and is safe for
// concurrent use; each reader it opens is used by one goroutine at a time.
type Source struct {
	spec     Spec
	log      *slog.Logger
	shards   []*shardPlan
	list     []event.Shard
	keyNames []string
	ddbKeys  [][]byte // typed-JSON Keys per key, for shape=dynamodb
	pad      []byte   // seeded padding and random payload pool
	// pad64[a] is pad[a:] in standard base64; set for Kinesis-shaped
	// records, which alone encode their data.
	pad64    [3][]byte
	kenc     *event.KinesisEncoder
	denc     *event.DynamoDBEncoder
	senc     *event.SQSEncoder
	idKey    [2]uint64 // seeded keys of SQS messageIds and DynamoDB eventIDs
	tmpl     []segment
	deadline time.Time // zero: none

	generated atomic.Int64
	ended     atomic.Int64 // shards read to their end
	doneOnce  sync.Once
	done      chan struct{}
}

// shardPlan is what one shard generates.
type shardPlan struct {
	idx   int
	id    string
	keys  []int32 // the keys hashed onto this shard
	count int64   // records to generate; -1 for no limit
	rate  float64 // records per second; 0 as fast as read
	ended atomic.Bool
	// kinesis makes the shard's Kinesis-shaped records, which keep only
	// their base64 data and write their JSON when a batch is built.
	kinesis *event.KinesisShard
}

var _ mapping.Source = (*Source)(nil)

// New returns a Source for cfg.Spec. The duration, when set, starts now. It
// starts nothing: records are generated as readers read them.
func New(cfg Config) (*Source, error) {
	sp := cfg.Spec
	if err := sp.withDefaults(); err != nil {
		return nil, fmt.Errorf("generator %s: %w", sp.Name, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	idARN := cfg.InvokeIdentityARN
	if idARN == "" {
		idARN = "arn:aws:iam::" + Account + ":role/esmd"
	}
	s := &Source{spec: sp, log: log, done: make(chan struct{})}
	s.idKey = [2]uint64{splitmix(uint64(sp.Seed) ^ 5<<56), splitmix(uint64(sp.Seed) ^ 6<<56)}
	switch sp.Shape {
	case event.DynamoDB:
		s.denc = event.NewDynamoDBEncoder(Region, sp.StreamARN())
	case event.SQS:
		s.senc = event.NewSQSEncoder(Region, sp.StreamARN())
	default:
		s.kenc = event.NewKinesisEncoder(Region, sp.StreamARN(), idARN)
	}
	if sp.Template != "" {
		s.tmpl = parseTemplate(sp.Template)
	}
	if sp.Duration > 0 {
		s.deadline = time.Now().Add(sp.Duration)
	}

	// Keys and their shards: the MD5 of the key, as a 128-bit number, falls
	// into one of Shards equal hash key ranges, as in Kinesis.
	s.keyNames = make([]string, sp.Keys)
	s.shards = make([]*shardPlan, sp.Shards)
	for i := range s.shards {
		s.shards[i] = &shardPlan{idx: i, id: fmt.Sprintf("shardId-%012d", i)}
		if s.kenc != nil {
			s.shards[i].kinesis = s.kenc.Shard(s.shards[i].id)
		}
	}
	for k := range s.keyNames {
		name := "key-" + strconv.Itoa(k)
		s.keyNames[k] = name
		sum := md5.Sum([]byte(name))
		hi, _ := bits.Mul64(binary.BigEndian.Uint64(sum[:8]), uint64(sp.Shards))
		sh := s.shards[hi]
		sh.keys = append(sh.keys, int32(k))
	}
	if sp.Shape == event.DynamoDB {
		s.ddbKeys = make([][]byte, sp.Keys)
		for k, name := range s.keyNames {
			s.ddbKeys[k] = fmt.Appendf(nil, `{"pk":{"S":%q}}`, name)
		}
	}
	// Counts and rates in proportion to the keys each shard holds; the
	// counts add up to Count exactly.
	cum := 0
	for _, sh := range s.shards {
		lo := cum
		cum += len(sh.keys)
		sh.count = -1
		if sp.Count > 0 {
			sh.count = sp.Count*int64(cum)/int64(sp.Keys) - sp.Count*int64(lo)/int64(sp.Keys)
		}
		sh.rate = sp.Rate * float64(len(sh.keys)) / float64(sp.Keys)
	}
	s.list = make([]event.Shard, len(s.shards))
	for i, sh := range s.shards {
		s.list[i] = event.Shard{ID: sh.id}
	}

	// The pool padding and random payloads are cut from. Random payloads
	// are the records' whole data, cut at 64 Ki offsets. Padding is
	// filler, and 4 Ki offsets are plenty: the pool and its base64 then
	// stay in the CPU's cache while HTTP buffers stream through it. With
	// 64 Ki, copying the padding's base64 missed the cache so often under
	// load that it cost about 175 ns a record, as much as the rest of the
	// generator together.
	offsets := 4 << 10
	if sp.Payload == PayloadRandom {
		offsets = 64 << 10
	}
	s.pad = make([]byte, offsets+sp.Size)
	st := uint64(sp.Seed)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	for i := range s.pad {
		st = splitmix(st)
		if sp.Payload == PayloadRandom {
			s.pad[i] = byte(st)
		} else {
			s.pad[i] = alphabet[st%uint64(len(alphabet))]
		}
	}
	if s.kenc != nil {
		for a := range s.pad64 {
			s.pad64[a] = event.AppendBase64(nil, s.pad[a:])
		}
	}
	return s, nil
}

// Spec returns the effective spec, defaults applied.
func (s *Source) Spec() Spec { return s.spec }

// Kind is the shape of the records: event.Kinesis, event.DynamoDB or
// event.SQS.
func (s *Source) Kind() event.Kind { return s.spec.Shape }

// Finite reports that every shard ends: the spec has a count or a duration.
func (s *Source) Finite() bool { return s.spec.Finite() }

// Generated is how many records readers have generated so far, re-generated
// ones (after a reopen) included.
func (s *Source) Generated() int64 { return s.generated.Load() }

// ShardCount returns how many records shard id generates in all; -1 when
// unbounded.
func (s *Source) ShardCount(id string) int64 {
	for _, sh := range s.shards {
		if sh.id == id {
			return sh.count
		}
	}
	return 0
}

// Done is closed once every shard was read to its end. It never closes for a
// spec that is not Finite.
func (s *Source) Done() <-chan struct{} { return s.done }

// Shards lists the shards; they never change. It does not block.
func (s *Source) Shards(ctx context.Context) ([]event.Shard, error) {
	out := make([]event.Shard, len(s.list))
	copy(out, s.list)
	return out, nil
}

// Open returns a reader of shard sh from start. AFTER_SEQUENCE_NUMBER and
// AT_SEQUENCE_NUMBER resume exactly there, regenerating the shard's earlier
// records to restore the per-key sequence numbers; every other start
// (TRIM_HORIZON, LATEST, AT_TIMESTAMP) begins with the shard's first record,
// since a generator's records only exist once read.
func (s *Source) Open(ctx context.Context, sh event.Shard, start event.Start) (mapping.ShardReader, error) {
	var plan *shardPlan
	for _, p := range s.shards {
		if p.id == sh.ID {
			plan = p
		}
	}
	if plan == nil {
		return nil, fmt.Errorf("generator %s: open %s: no such shard", s.spec.Name, sh.ID)
	}
	var next int64
	switch start.Type {
	case event.AfterSequence, event.AtSequence:
		n, err := s.parseSeq(plan, start.Seq)
		if err != nil {
			return nil, fmt.Errorf("generator %s: open %s: %w", s.spec.Name, sh.ID, err)
		}
		next = n
		if start.Type == event.AtSequence {
			next = n - 1
		}
	}
	r := &reader{src: s, sh: plan, perKey: make([]int64, len(plan.keys)), t0: time.Now(), free: make(chan *readMem, freeReads)}
	if plan.count >= 0 && next > plan.count {
		next = plan.count
	}
	for j := int64(0); j < next; j++ {
		r.perKey[r.pick(j)]++
	}
	r.next, r.j0 = next, next
	return r, nil
}

// seqDigits is the width of the record number in a sequence number.
const seqDigits = 20

// appendSeq appends the sequence number of record j (0-based) of shard idx:
// "49", the shard index in 6 digits, then j+1 in 20 digits. Fixed widths keep
// the numbers rising within a shard.
func appendSeq(b []byte, idx int, j int64) []byte {
	b = append(b, '4', '9')
	b = appendPadded(b, uint64(idx), 6)
	return appendPadded(b, uint64(j+1), seqDigits)
}

func appendPadded(b []byte, v uint64, width int) []byte {
	var tmp [20]byte
	d := strconv.AppendUint(tmp[:0], v, 10)
	for i := len(d); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, d...)
}

// parseSeq returns the record number (1-based) a sequence number of shard
// plan names.
func (s *Source) parseSeq(plan *shardPlan, seq string) (int64, error) {
	idx, n, ok := ParseSeq(seq)
	if !ok || idx != plan.idx {
		return 0, fmt.Errorf("sequence number %q is not one of this shard's", seq)
	}
	return n, nil
}

// ParseSeq returns what a generator's sequence number names: the index of
// the record's shard (0 for shardId-000000000000) and the record's number
// in that shard, from 1. ok is false for any other string.
func ParseSeq(seq string) (shard int, n int64, ok bool) {
	return parseSeq(seq)
}

// parseSeq is ParseSeq for a string or its bytes, which it does not copy.
func parseSeq[T string | []byte](seq T) (shard int, n int64, ok bool) {
	const shardDigits = 6
	// A record number is below 2^63 < 10^19: its 20 digits begin with 0,
	// and the other 19 fit a uint64.
	if len(seq) != 2+shardDigits+seqDigits || seq[0] != '4' || seq[1] != '9' || seq[2+shardDigits] != '0' {
		return 0, 0, false
	}
	var idx, num uint64
	for i := 2; i < len(seq); i++ {
		c := seq[i]
		if c < '0' || c > '9' {
			return 0, 0, false
		}
		if i < 2+shardDigits {
			idx = idx*10 + uint64(c-'0')
		} else {
			num = num*10 + uint64(c-'0')
		}
	}
	if num < 1 || num > math.MaxInt64 {
		return 0, 0, false
	}
	return int(idx), int64(num), true
}

// splitmix is one step of SplitMix64: a fast, well-mixed 64-bit hash.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// draw returns the random number of stream kind for record j of shard idx.
func (s *Source) draw(idx int, j int64, kind uint64) uint64 {
	return splitmix(splitmix(uint64(s.spec.Seed)^kind<<56^uint64(idx)<<40) ^ uint64(j))
}

// poison reports that record j (0-based) of shard idx is a poison record.
func (s *Source) poison(idx int, j int64) bool {
	return s.spec.Poison > 0 && float64(s.draw(idx, j, 2)>>11)/(1<<53) < s.spec.Poison
}

// Poison reports that record n (from 1, as ParseSeq gives it) of the shard
// with index shard is a poison record: one whose data says "poison":true
// when the payload is JSON. It holds for every payload, so that a caller
// can tell poison records from their sequence numbers alone.
func (s *Source) Poison(shard int, n int64) bool {
	return n >= 1 && s.poison(shard, n-1)
}

func (s *Source) shardEnded(sh *shardPlan) {
	if sh.ended.CompareAndSwap(false, true) {
		if s.ended.Add(1) == int64(len(s.shards)) {
			s.doneOnce.Do(func() { close(s.done) })
			s.log.Info("generator finished", "generator", s.spec.Name, "generated", s.generated.Load())
		}
	}
}

// reader reads one shard. It is used by one goroutine at a time.
type reader struct {
	src    *Source
	sh     *shardPlan
	perKey []int64 // records generated so far per key of the shard
	next   int64   // the next record's number, 0-based
	j0     int64   // next when the reader was opened
	t0     time.Time
	timer  *time.Timer
	data   []byte // scratch for one record's data
	seq    []byte // scratch for one sequence number
	nanos  nanosText
	// free holds the memory of reads the engine released, for reuse.
	free chan *readMem
}

// readMem is the memory of one read: its records and, for Kinesis-shaped
// records, their base64 data. Both keep their whole capacity for the reads
// that reuse them.
type readMem struct {
	recs []event.Record
	data []byte
}

// freeReads bounds the released reads a reader keeps: enough for a lane's
// read and the one waiting for it, with room for a few more lanes.
const freeReads = 4

// pick returns the index, in the shard's key list, of record j's key.
func (r *reader) pick(j int64) int {
	return int(r.src.draw(r.sh.idx, j, 1) % uint64(len(r.sh.keys)))
}

// Read returns the records due now, at most ReadSize, waiting until at least
// one is due. At the shard's end it returns mapping.ErrShardClosed. It
// returns ctx.Err() when ctx ends while it waits.
func (r *reader) Read(ctx context.Context) (mapping.ReadResult, error) {
	s, sh := r.src, r.sh
	for {
		now := time.Now()
		if (sh.count >= 0 && r.next >= sh.count) || (!s.deadline.IsZero() && !now.Before(s.deadline)) {
			s.shardEnded(sh)
			return mapping.ReadResult{}, mapping.ErrShardClosed
		}
		n := int64(s.spec.ReadSize)
		if sh.count >= 0 {
			n = min(n, sh.count-r.next)
		}
		var wait time.Duration
		switch {
		case len(sh.keys) == 0:
			// No key hashes onto this shard: it stays empty.
			n, wait = 0, time.Duration(math.MaxInt64)
		case sh.rate > 0:
			due := int64(now.Sub(r.t0).Seconds()*sh.rate) + 1 - (r.next - r.j0)
			if due <= 0 {
				at := r.t0.Add(time.Duration(float64(r.next-r.j0) / sh.rate * float64(time.Second)))
				n, wait = 0, max(at.Sub(now), time.Millisecond)
			} else {
				n = min(n, due)
			}
		}
		if n > 0 {
			m, recs := r.generate(int(n), now)
			return mapping.ReadResult{Records: recs, MillisBehind: -1, Release: func() { r.release(m) }}, nil
		}
		if !s.deadline.IsZero() {
			wait = min(wait, s.deadline.Sub(now))
		}
		if err := r.sleep(ctx, wait); err != nil {
			return mapping.ReadResult{}, err
		}
	}
}

func (r *reader) sleep(ctx context.Context, d time.Duration) error {
	if r.timer == nil {
		r.timer = time.NewTimer(d)
	} else {
		r.timer.Reset(d)
	}
	select {
	case <-r.timer.C:
		return nil
	case <-ctx.Done():
		r.timer.Stop()
		return ctx.Err()
	}
}

// release takes back the memory of a read the engine is done with.
func (r *reader) release(m *readMem) {
	select {
	case r.free <- m:
	default: // enough kept: leave it to the garbage collector
	}
}

// generate makes the next n records; now is the arrival time of records
// generated as fast as read. Their memory, m, is a released read's when
// one is large enough.
func (r *reader) generate(n int, now time.Time) (m *readMem, recs []event.Record) {
	s, sh := r.src, r.sh
	select {
	case m = <-r.free:
	default:
		m = new(readMem)
	}
	if cap(m.recs) < n {
		m.recs = make([]event.Record, n)
	}
	// The read gets exactly n: an append to it must not run into the
	// rest of m.recs, which keeps its whole capacity for larger reads.
	recs = m.recs[:n:n]
	// One string holds the sequence numbers of the whole read.
	r.seq = appendSeq(r.seq[:0], sh.idx, r.next)
	w := len(r.seq)
	var sb strings.Builder
	sb.Grow(n * w)
	for i := 0; i < n; i++ {
		if i > 0 {
			incDecimal(r.seq)
		}
		sb.Write(r.seq)
	}
	seqs := sb.String()
	// Kinesis-shaped records keep their base64 data in one buffer, as
	// records from GetRecords keep theirs in the response.
	var buf []byte
	if s.kenc != nil {
		if size := n * base64.StdEncoding.EncodedLen(s.spec.Size); cap(m.data) < size {
			m.data = make([]byte, 0, size)
		}
		buf = m.data[:0]
	}
	for i := range recs {
		j := r.next
		r.next++
		k := r.pick(j)
		r.perKey[k]++
		key := int(sh.keys[k])
		arrival := now
		if sh.rate > 0 {
			arrival = r.t0.Add(time.Duration(float64(j-r.j0) / sh.rate * float64(time.Second)))
		}
		seq := seqs[i*w : (i+1)*w]
		poison := s.poison(sh.idx, j)
		var pad padding
		r.data, pad = s.appendData(r.data[:0], sh, j, key, r.perKey[k], arrival, &r.nanos, poison, seq)
		switch {
		case s.kenc != nil:
			// Should buf grow, the records before keep its old array.
			from := len(buf)
			buf = s.appendBase64(buf, r.data, pad)
			recs[i] = sh.kinesis.Record(s.keyNames[key], seq, buf[from:len(buf):len(buf)], arrival)
		case s.senc != nil:
			recs[i] = s.encodeSQS(sh, j, key, seq, r.data, arrival)
		default:
			recs[i] = s.encodeDynamoDB(sh.idx, j, key, seq, r.data, arrival)
		}
	}
	s.generated.Add(int64(n))
	if cap(buf) > cap(m.data) {
		m.data = buf // grown: keep the larger one
	}
	return m, recs
}

// incDecimal adds one to the decimal number that ends b, in place.
func incDecimal(b []byte) {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != '9' {
			b[i]++
			return
		}
		b[i] = '0'
	}
}

// nanosText caches the decimal text of a time in Unix nanoseconds: the
// records of a read generated as fast as they are read share one arrival
// time.
type nanosText struct {
	ns   int64
	text []byte
}

func (c *nanosText) append(b []byte, t time.Time) []byte {
	if ns := t.UnixNano(); c.text == nil || ns != c.ns {
		c.ns, c.text = ns, strconv.AppendInt(c.text[:0], ns, 10)
	}
	return append(b, c.text...)
}

// padding says where a record's data holds a piece of the pad pool:
// data[at:at+n] is pad[off:off+n].
type padding struct{ at, n, off int }

// appendBase64 appends data in standard base64. The whole 3-byte groups of
// its padding are copied from the pad pool's encodings instead of encoded:
// most of a generated record's data is padding.
func (s *Source) appendBase64(dst, data []byte, p padding) []byte {
	head := (p.at + 2) / 3 * 3 // the first group boundary inside the padding
	groups := (p.at + p.n - head) / 3
	if groups <= 0 {
		return event.AppendBase64(dst, data)
	}
	dst = event.AppendBase64(dst, data[:head])
	from := p.off + head - p.at // where data[head] is in the pool
	a := from % 3
	i := from / 3 * 4
	dst = append(dst, s.pad64[a][i:i+groups*4]...)
	return event.AppendBase64(dst, data[head+groups*3:])
}

// appendData appends the data of record j, and says where its padding is,
// from the start of the data.
func (s *Source) appendData(b []byte, sh *shardPlan, j int64, key int, n int64, at time.Time, nanos *nanosText, poison bool, seq string) ([]byte, padding) {
	size := s.spec.Size
	off := int(s.draw(sh.idx, j, 3) % uint64(len(s.pad)-size))
	if s.spec.Payload == PayloadRandom {
		return append(b, s.pad[off:off+size]...), padding{n: size, off: off}
	}
	if s.tmpl != nil {
		return s.appendTemplate(b, sh, key, n, at, nanos, poison, seq, off)
	}
	start := len(b)
	b = append(b, `{"k":"`...)
	b = append(b, s.keyNames[key]...)
	b = append(b, `","n":`...)
	b = strconv.AppendInt(b, n, 10)
	b = append(b, `,"t":`...)
	b = nanos.append(b, at)
	b = append(b, `,"poison":`...)
	b = strconv.AppendBool(b, poison)
	b = append(b, `,"pad":"`...)
	var pad padding
	if padLen := size - (len(b) - start) - 2; padLen > 0 {
		pad = padding{at: len(b) - start, n: padLen, off: off}
		b = append(b, s.pad[off:off+padLen]...)
	}
	return append(b, `"}`...), pad
}

// encodeDynamoDB makes the INSERT of item {pk: key, data: <data as
// string>} that is record j of shard idx.
func (s *Source) encodeDynamoDB(idx int, j int64, key int, seq string, data []byte, at time.Time) event.Record {
	img := make([]byte, 0, len(data)+64)
	img = append(img, s.ddbKeys[key][:len(s.ddbKeys[key])-1]...)
	img = append(img, `,"data":{"S":`...)
	img = event.AppendJSONString(img, string(data))
	img = append(img, `}}`...)
	return s.denc.Encode(event.DynamoDBRecord{
		EventID:                     s.eventID(idx, j),
		EventName:                   "INSERT",
		ApproximateCreationDateTime: at,
		Keys:                        s.ddbKeys[key],
		NewImage:                    img,
		SequenceNumber:              seq,
		SizeBytes:                   int64(len(img)),
		StreamViewType:              "NEW_IMAGE",
	})
}

// eventID returns the DynamoDB eventID of record j of shard idx: 32
// lowercase hex digits, as DynamoDB Streams writes them. It is a function of
// the seed, the shard and the record only, and no two records of one
// generator share one: the low 64 bits are a bijection of j (SplitMix64's
// steps are all invertible), and the high 64 bits, for a given j, a
// bijection of the shard index.
func (s *Source) eventID(idx int, j int64) string {
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], splitmix(uint64(idx)^s.idKey[0])^splitmix(uint64(j)))
	binary.BigEndian.PutUint64(raw[8:], splitmix(uint64(j)^s.idKey[1]))
	var out [32]byte
	hex.Encode(out[:], raw[:])
	return string(out[:])
}

// SenderID is the SenderId attribute of SQS-shaped records.
const SenderID = "AIDAESMDGENERATOR"

// encodeSQS makes the message of record j of shard sh, as a standard queue
// delivers it the first time. The body is the data; random data, which need
// not be UTF-8, is base64-encoded (standard alphabet, padded) so that the
// body is valid text as SQS requires.
//
// The Record keeps the stream engine's meaning: ID is the messageId (the
// itemIdentifier of a partial batch response for SQS), Seq the generator's
// sequence number (checkpoints and failure records), Key the partition key
// (lanes keep per-key order), Arrival the generation time, and Receipt is
// empty, since there is no queue to delete from. The receipt handle in the
// JSON is the base64 of NAME/SHARD/SEQ/MESSAGEID, from which ScanRecords
// reads the sequence number back. Failure records of these
// records keep the stream engine's KinesisBatchInfo form with the shard and
// sequence numbers: Lambda has no on-failure destination for SQS queues, so
// there is no AWS shape to follow.
func (s *Source) encodeSQS(sh *shardPlan, j int64, key int, seq string, data []byte, at time.Time) event.Record {
	body := string(data)
	if s.spec.Payload == PayloadRandom {
		body = base64.StdEncoding.EncodeToString(data)
	}
	sum := md5.Sum([]byte(body))
	ms := strconv.FormatInt(at.UnixMilli(), 10)
	id := s.messageID(sh.idx, j)
	r := s.senc.Encode(event.SQSMessage{
		MessageID:     id,
		ReceiptHandle: base64.StdEncoding.EncodeToString([]byte(s.spec.Name + "/" + sh.id + "/" + seq + "/" + id)),
		Body:          body,
		MD5OfBody:     hex.EncodeToString(sum[:]),
		Attributes: map[string]string{
			"ApproximateReceiveCount":          "1",
			"SentTimestamp":                    ms,
			"SenderId":                         SenderID,
			"ApproximateFirstReceiveTimestamp": ms,
		},
		MessageAttributes: map[string]event.SQSMessageAttribute{},
	})
	r.ID, r.Seq, r.Key, r.Arrival, r.Receipt = id, seq, s.keyNames[key], at, ""
	return r
}

// messageID returns the UUID (version 4 layout) of record j of shard idx.
// It is a function of the seed, the shard and the record only, and no two
// records of one generator share one: around the version and variant bits,
// the second half is a bijection of j over 62 bits, and the first a
// bijection over 60 bits of the shard index (below 2^17) beside 43 bits
// drawn from the seed and j. So the second half gives j, and with it the
// first half gives the shard.
func (s *Source) messageID(idx int, j int64) string {
	const m60, m62 = 1<<60 - 1, 1<<62 - 1
	a := mix((s.idKey[0]^splitmix(uint64(j)))<<17^uint64(idx), m60, 17)
	b := mix((uint64(j)^s.idKey[1])&m62, m62, 31)
	hi := a>>12<<16 | 0x4000 | a&0xfff
	lo := 0b10<<62 | b
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[:8], hi)
	binary.BigEndian.PutUint64(u[8:], lo)
	return u.String()
}

// mix scrambles x within the bits of mask (2^n-1, n > shift): odd
// multiplications modulo 2^n and xor-shifts right are both invertible
// there, so mix is a bijection of [0, 2^n).
func mix(x, mask uint64, shift uint) uint64 {
	x &= mask
	x = x * 0xbf58476d1ce4e5b9 & mask
	x ^= x >> shift
	x = x * 0x94d049bb133111eb & mask
	return x ^ x>>shift
}

// Close releases the reader.
func (r *reader) Close() error {
	if r.timer != nil {
		r.timer.Stop()
	}
	return nil
}
