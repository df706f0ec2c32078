package generator

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/internal/names"
)

// Scheme is the URL scheme of generator sources.
const Scheme = "generator://"

// Defaults of a Spec.
const (
	DefaultShards   = 4
	DefaultKeys     = 1000
	DefaultSize     = 100
	DefaultSeed     = 1
	DefaultReadSize = 1000
	// Region and Account are those of the stream ARN a generator's records
	// name.
	Region  = "us-east-1"
	Account = "000000000000"
	// MaxShards bounds shards= (Kinesis's default account quota is far
	// below).
	MaxShards = 100000
)

// Payload kinds of a Spec.
const (
	// PayloadJSON is the default: the JSON object that ParseData reads.
	PayloadJSON = "json"
	// PayloadRandom is Size seeded random bytes, without a key or sequence.
	PayloadRandom = "random"
)

// Spec describes a generator. The zero value of a field means its default.
type Spec struct {
	// Name is the stream name, in the stream ARN of the records.
	Name string
	// Shards is the number of shards; DefaultShards when zero.
	Shards int
	// Rate is the target rate in records per second over all shards, a
	// finite number; zero generates as fast as the records are read.
	Rate float64
	// Keys is the number of distinct partition keys; DefaultKeys when zero.
	Keys int
	// Size is the approximate size of a record's data in bytes; DefaultSize
	// when zero. JSON payloads are padded up to it.
	Size int
	// Count is the number of records over all shards; zero for no limit.
	Count int64
	// Duration ends generation this long after the source was made; zero
	// for no limit. A spec with neither Count nor Duration never ends.
	Duration time.Duration
	// Seed makes runs reproducible; DefaultSeed when zero.
	Seed int64
	// Shape is event.Kinesis (default), event.DynamoDB or event.SQS.
	Shape event.Kind
	// Poison is the fraction (0–1) of records flagged "poison":true.
	Poison float64
	// Payload is PayloadJSON (default) or PayloadRandom.
	Payload string
	// Template, when set, replaces the JSON payload: {{key}}, {{n}}, {{t}},
	// {{poison}}, {{pad}}, {{seq}} and {{shard}} are replaced per record.
	Template string
	// ReadSize is the most records one Read returns; DefaultReadSize when
	// zero.
	ReadSize int
}

var nameRE = names.New(`^[a-zA-Z0-9_.-]+$`, 1, 128)

// ParseURL parses generator://NAME?key=value&… into a Spec with its
// defaults applied. Keys: shards, rate, keys, size, count, duration, seed,
// shape (kinesis|dynamodb|sqs), poison, payload (json|random), template,
// readsize. In a template, write %26 for & and %2B for +.
func ParseURL(s string) (Spec, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return Spec{}, fmt.Errorf("%q: a generator source starts with %s", s, Scheme)
	}
	name, query, _ := strings.Cut(rest, "?")
	sp := Spec{Name: name}
	vals, err := url.ParseQuery(query)
	if err != nil {
		return Spec{}, fmt.Errorf("%q: query: %w", s, err)
	}
	var errs []string
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Sprintf("%s: "+format, append([]any{key}, args...)...))
	}
	for _, key := range slices.Sorted(maps.Keys(vals)) {
		vs := vals[key]
		v := vs[len(vs)-1]
		if len(vs) > 1 {
			bad(key, "given %d times", len(vs))
		}
		var err error
		// zero is an explicit 0 for a key whose zero would mean its
		// default: "shards=0" (or "00") must not become 4 shards.
		zero := false
		switch key {
		case "shards":
			sp.Shards, err = strconv.Atoi(v)
			zero = sp.Shards == 0
		case "rate":
			sp.Rate, err = strconv.ParseFloat(v, 64)
		case "keys":
			sp.Keys, err = strconv.Atoi(v)
			zero = sp.Keys == 0
		case "size":
			sp.Size, err = strconv.Atoi(v)
			zero = sp.Size == 0
		case "count":
			sp.Count, err = strconv.ParseInt(v, 10, 64)
		case "duration":
			sp.Duration, err = time.ParseDuration(v)
		case "seed":
			sp.Seed, err = strconv.ParseInt(v, 10, 64)
		case "shape":
			sp.Shape = event.Kind(v)
		case "poison":
			sp.Poison, err = strconv.ParseFloat(v, 64)
		case "payload":
			sp.Payload = v
		case "template":
			sp.Template = v
		case "readsize":
			sp.ReadSize, err = strconv.Atoi(v)
			zero = sp.ReadSize == 0
		default:
			bad(key, "unknown key (known: shards, rate, keys, size, count, duration, seed, shape, poison, payload, template, readsize)")
			continue
		}
		switch {
		case err != nil:
			bad(key, "%q is not a valid value", v)
		case zero:
			bad(key, "%s is not between 1 and its maximum", v)
		}
	}
	if len(errs) > 0 {
		return Spec{}, fmt.Errorf("%q: %s", s, strings.Join(errs, "; "))
	}
	if err := sp.withDefaults(); err != nil {
		return Spec{}, fmt.Errorf("%q: %w", s, err)
	}
	return sp, nil
}

// WithDefaults returns the spec with its defaults filled in, and an error
// that names every invalid field, as New would report them.
func (s Spec) WithDefaults() (Spec, error) {
	err := s.withDefaults()
	return s, err
}

// withDefaults fills in defaults and validates the spec.
func (s *Spec) withDefaults() error {
	if s.Shards == 0 {
		s.Shards = DefaultShards
	}
	if s.Keys == 0 {
		s.Keys = DefaultKeys
	}
	if s.Size == 0 {
		s.Size = DefaultSize
	}
	if s.Seed == 0 {
		s.Seed = DefaultSeed
	}
	if s.Shape == "" {
		s.Shape = event.Kinesis
	}
	if s.Payload == "" {
		s.Payload = PayloadJSON
	}
	if s.ReadSize == 0 {
		s.ReadSize = DefaultReadSize
	}
	var errs []error
	if !nameRE.MatchString(s.Name) {
		errs = append(errs, fmt.Errorf("name %q must be 1 to 128 letters, digits, _ . or -", s.Name))
	}
	if s.Shards < 1 || s.Shards > MaxShards {
		errs = append(errs, fmt.Errorf("shards: %d is not between 1 and %d", s.Shards, MaxShards))
	}
	switch {
	case math.IsNaN(s.Rate) || math.IsInf(s.Rate, 0):
		errs = append(errs, fmt.Errorf("rate: %g is not a number of records per second (0 or more; 0 or none: as fast as read)", s.Rate))
	case s.Rate < 0:
		errs = append(errs, fmt.Errorf("rate: %g must not be negative", s.Rate))
	}
	if s.Keys < 1 {
		errs = append(errs, fmt.Errorf("keys: %d must be at least 1", s.Keys))
	}
	if s.Size < 1 || s.Size > 1<<20 {
		errs = append(errs, fmt.Errorf("size: %d is not between 1 and 1048576", s.Size))
	}
	if s.Count < 0 {
		errs = append(errs, fmt.Errorf("count: %d must not be negative", s.Count))
	}
	if s.Duration < 0 {
		errs = append(errs, fmt.Errorf("duration: %s must not be negative", s.Duration))
	}
	if s.Shape != event.Kinesis && s.Shape != event.DynamoDB && s.Shape != event.SQS {
		errs = append(errs, fmt.Errorf("shape: %q is not kinesis, dynamodb or sqs", s.Shape))
	}
	if !(s.Poison >= 0 && s.Poison <= 1) { // NaN too
		errs = append(errs, fmt.Errorf("poison: %g is not between 0 and 1", s.Poison))
	}
	if s.Payload != PayloadJSON && s.Payload != PayloadRandom {
		errs = append(errs, fmt.Errorf("payload: %q is not json or random", s.Payload))
	}
	if s.Template != "" && s.Payload == PayloadRandom {
		errs = append(errs, errors.New("template: does not apply to payload=random"))
	}
	if s.ReadSize < 1 || s.ReadSize > 10000 {
		errs = append(errs, fmt.Errorf("readsize: %d is not between 1 and 10000", s.ReadSize))
	}
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return errors.New(strings.Join(msgs, "; "))
}

// Finite reports that the spec ends: it has a count or a duration.
func (s Spec) Finite() bool { return s.Count > 0 || s.Duration > 0 }

// StreamARN is the ARN the records name: a Kinesis stream ARN, a DynamoDB
// stream ARN for shape=dynamodb, or an SQS queue ARN for shape=sqs. It is
// also the StreamARN of the generator's failure records.
func (s Spec) StreamARN() string {
	switch s.Shape {
	case event.DynamoDB:
		return fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s/stream/1970-01-01T00:00:00.000", Region, Account, s.Name)
	case event.SQS:
		return fmt.Sprintf("arn:aws:sqs:%s:%s:%s", Region, Account, s.Name)
	}
	return fmt.Sprintf("arn:aws:kinesis:%s:%s:stream/%s", Region, Account, s.Name)
}

// URL returns the spec as a generator URL that ParseURL reads back to an
// equal Spec; defaults are written out.
func (s Spec) URL() string {
	q := url.Values{}
	q.Set("shards", strconv.Itoa(s.Shards))
	if s.Rate > 0 {
		q.Set("rate", strconv.FormatFloat(s.Rate, 'g', -1, 64))
	}
	q.Set("keys", strconv.Itoa(s.Keys))
	q.Set("size", strconv.Itoa(s.Size))
	if s.Count > 0 {
		q.Set("count", strconv.FormatInt(s.Count, 10))
	}
	if s.Duration > 0 {
		q.Set("duration", s.Duration.String())
	}
	q.Set("seed", strconv.FormatInt(s.Seed, 10))
	q.Set("shape", string(s.Shape))
	if s.Poison > 0 {
		q.Set("poison", strconv.FormatFloat(s.Poison, 'g', -1, 64))
	}
	q.Set("payload", s.Payload)
	if s.Template != "" {
		q.Set("template", s.Template)
	}
	q.Set("readsize", strconv.Itoa(s.ReadSize))
	return Scheme + s.Name + "?" + q.Encode()
}
