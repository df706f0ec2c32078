package admin

import (
	"net/url"
	"strings"
	"time"

	"github.com/esmd-dev/esmd/config"
	"github.com/esmd-dev/esmd/mapping"
)

// Source gives the server the mappings to report. Mappings is called once
// per request or scrape, possibly from several goroutines at once, so it
// must be safe for concurrent use and cheap; it may return a different set
// after a reload.
type Source interface {
	Mappings() []Mapping
}

// SourceFunc adapts a function to Source.
type SourceFunc func() []Mapping

// Mappings calls f.
func (f SourceFunc) Mappings() []Mapping { return f() }

// Static is a Source with a fixed set of mappings.
type Static []Mapping

// Mappings returns s.
func (s Static) Mappings() []Mapping { return s }

// Mapping is what the server reports about one event source mapping. The
// pointers and Status are read at request time; they may be nil for a
// disabled mapping.
type Mapping struct {
	Name string
	UUID string
	// SourceKind is kinesis, dynamodb or sqs.
	SourceKind     string
	EventSourceArn string
	FunctionArn    string
	Enabled        bool
	// LastModified is when the mapping was created or last updated.
	LastModified time.Time
	// Settings are the effective AWS properties under their CloudFormation
	// names (BatchSize, ParallelizationFactor, ...), merged into the
	// mapping's JSON. They must hold no secret; Properties builds them.
	Settings map[string]any
	// Stats are the mapping's live counters; SQS is set for SQS mappings
	// only, and its embedded Stats is then the same as Stats.
	Stats *mapping.Stats
	SQS   *mapping.SQSStats
	// Status snapshots the mapping's state and shards. Nil means no runner:
	// the mapping is Disabled when not Enabled, else Creating.
	Status func() mapping.Status
}

// status returns m's status, filling in what a nil Status cannot say.
func (m *Mapping) status() mapping.Status {
	if m.Status != nil {
		st := m.Status()
		if st.State == "" {
			st.State = "Creating"
		}
		if st.LastProcessingResult == "" {
			st.LastProcessingResult = noRecords
		}
		return st
	}
	st := mapping.Status{State: "Creating", StateTransitionReason: userAction, LastProcessingResult: noRecords}
	if !m.Enabled {
		st.State = "Disabled"
	}
	return st
}

// AWS's texts.
const (
	noRecords  = "No records processed"
	userAction = "User action"
)

// ForRunner describes the stream mapping that r runs, whose effective
// settings are s. Like ForSQSRunner and ForDisabled it leaves LastModified
// to the caller: the time the runner was started or its settings last
// changed.
func ForRunner(r *mapping.Runner, s config.Settings) Mapping {
	c := r.Config()
	return Mapping{
		Name:           c.Name,
		UUID:           c.UUID,
		SourceKind:     string(s.Source.Kind),
		EventSourceArn: s.Source.ARN,
		FunctionArn:    c.FunctionARN,
		Enabled:        true,
		Settings:       Properties(s),
		Stats:          r.Stats(),
		Status:         r.Status,
	}
}

// ForSQSRunner describes the SQS mapping that r runs, whose effective
// settings are s. SQSRunner has no Status method yet, so its status is
// derived from its counters: Enabled while it has pollers, Disabled
// otherwise; it is always reported healthy because receive failures are not
// visible from outside the runner.
func ForSQSRunner(r *mapping.SQSRunner, s config.Settings, functionArn string) Mapping {
	st := r.SQSStats()
	return Mapping{
		Name:           s.Name,
		UUID:           s.UUID,
		SourceKind:     string(s.Source.Kind),
		EventSourceArn: s.Source.ARN,
		FunctionArn:    functionArn,
		Enabled:        true,
		Settings:       Properties(s),
		Stats:          r.Stats(),
		SQS:            st,
		Status:         r.Status,
	}
}

// ForDisabled describes a mapping that is configured but not enabled.
func ForDisabled(s config.Settings, functionArn string) Mapping {
	return Mapping{
		Name:           s.Name,
		UUID:           s.UUID,
		SourceKind:     string(s.Source.Kind),
		EventSourceArn: s.Source.ARN,
		FunctionArn:    functionArn,
		Settings:       Properties(s),
	}
}

// Properties returns the effective AWS properties of a mapping under their
// CloudFormation names, as /mappings shows them: the properties that apply
// to its source type only, with AWS's -1 for "no limit". Destination URLs
// have their password and query values redacted.
func Properties(s config.Settings) map[string]any {
	p := map[string]any{
		"BatchSize":                      s.BatchSize,
		"MaximumBatchingWindowInSeconds": int(s.BatchingWindow / time.Second),
		"FunctionResponseTypes":          []string{},
	}
	if s.ReportBatchItemFailures {
		p["FunctionResponseTypes"] = []string{config.ReportBatchItemFailures}
	}
	if s.Source.Kind == config.SourceSQS {
		p["ScalingConfig"] = map[string]any{"MaximumConcurrency": s.MaximumConcurrency}
		return p
	}
	age := -1
	if s.MaximumRecordAge > 0 {
		age = int(s.MaximumRecordAge / time.Second)
	}
	onFailure := map[string]any{}
	if d := s.OnFailure; d != nil {
		target := d.ARN
		if target == "" {
			target = redactURL(d.URL)
		}
		onFailure["Destination"] = target
	}
	p["ParallelizationFactor"] = s.ParallelizationFactor
	p["MaximumRecordAgeInSeconds"] = age
	p["MaximumRetryAttempts"] = s.MaximumRetryAttempts
	p["BisectBatchOnFunctionError"] = s.BisectBatchOnFunctionError
	p["StartingPosition"] = s.StartingPosition
	if !s.StartingPositionTimestamp.IsZero() {
		p["StartingPositionTimestamp"] = epochSeconds(s.StartingPositionTimestamp)
	}
	p["DestinationConfig"] = map[string]any{"OnFailure": onFailure}
	return p
}

// redactURL hides a URL's password and query values, where tokens live.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Unparsable: keep only the scheme, which is all that is safe.
		scheme, _, _ := strings.Cut(raw, "://")
		return scheme + "://" + redacted
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), redacted)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{redacted}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

const redacted = "REDACTED"

// epochSeconds is AWS's timestamp form: Unix seconds with milliseconds.
func epochSeconds(t time.Time) float64 {
	return float64(t.UnixMilli()) / 1000
}
