package config

import (
	"time"
)

// Mapping is one event source mapping. Its AWS properties carry
// CloudFormation's AWS::Lambda::EventSourceMapping names; pointer fields are
// nil when the property is absent from the file and hold the effective
// value after Parse. Settings returns them all as plain values.
type Mapping struct {
	EventSourceArn                 string             `yaml:"EventSourceArn"`
	FunctionName                   string             `yaml:"FunctionName"`
	Enabled                        *bool              `yaml:"Enabled,omitempty"`
	BatchSize                      *int               `yaml:"BatchSize,omitempty"`
	MaximumBatchingWindowInSeconds *int               `yaml:"MaximumBatchingWindowInSeconds,omitempty"`
	StartingPosition               string             `yaml:"StartingPosition,omitempty"`
	StartingPositionTimestamp      *Timestamp         `yaml:"StartingPositionTimestamp,omitempty"`
	ParallelizationFactor          *int               `yaml:"ParallelizationFactor,omitempty"`
	MaximumRecordAgeInSeconds      *int               `yaml:"MaximumRecordAgeInSeconds,omitempty"`
	MaximumRetryAttempts           *int               `yaml:"MaximumRetryAttempts,omitempty"`
	BisectBatchOnFunctionError     *bool              `yaml:"BisectBatchOnFunctionError,omitempty"`
	FunctionResponseTypes          []string           `yaml:"FunctionResponseTypes,omitempty"`
	DestinationConfig              *DestinationConfig `yaml:"DestinationConfig,omitempty"`
	ScalingConfig                  *ScalingConfig     `yaml:"ScalingConfig,omitempty"`
	// FilterCriteria is rejected: not supported yet.
	FilterCriteria *FilterCriteria `yaml:"FilterCriteria,omitempty"`
	// TumblingWindowInSeconds is rejected: not supported yet.
	TumblingWindowInSeconds *int `yaml:"TumblingWindowInSeconds,omitempty"`
	// ESMD holds esmd's own settings for this mapping.
	ESMD ESMD `yaml:"esmd,omitempty"`

	// Computed by Parse.

	// Name is esmd.name, or <FunctionName>-<source resource name>.
	Name string `yaml:"-" json:"-"`
	// UUID is esmd.uuid, or a UUID v5 derived from Name.
	UUID string `yaml:"-" json:"-"`
	// Source is the parsed EventSourceArn.
	Source Source `yaml:"-" json:"-"`
	// OnFailure is the parsed DestinationConfig.OnFailure.Destination, or
	// nil.
	OnFailure *Destination `yaml:"-" json:"-"`
}

// DestinationConfig is where records go after processing.
type DestinationConfig struct {
	OnFailure *OnDestination `yaml:"OnFailure,omitempty"`
	// OnSuccess is rejected: not supported.
	OnSuccess *OnDestination `yaml:"OnSuccess,omitempty"`
}

// OnDestination names one destination.
type OnDestination struct {
	Destination string `yaml:"Destination"`
}

// ScalingConfig bounds SQS poller concurrency.
type ScalingConfig struct {
	MaximumConcurrency *int `yaml:"MaximumConcurrency,omitempty"`
}

// FilterCriteria is event filtering (not supported yet).
type FilterCriteria struct {
	Filters []Filter `yaml:"Filters,omitempty"`
}

// Filter is one event filter pattern.
type Filter struct {
	Pattern string `yaml:"Pattern,omitempty"`
}

// ESMD is the esmd: block of a mapping: settings that are not AWS
// properties.
type ESMD struct {
	Name string `yaml:"name,omitempty"`
	UUID string `yaml:"uuid,omitempty"`
	// PollInterval is the pause after an empty poll. Default 1s for
	// Kinesis, 250ms for DynamoDB Streams, 0 for SQS (long polling).
	PollInterval *Duration `yaml:"pollInterval,omitempty"`
	// ShardDiscoveryInterval is how often shards are listed (streams).
	// Default 30s.
	ShardDiscoveryInterval *Duration `yaml:"shardDiscoveryInterval,omitempty"`
	// InvokeIdentityArn is the invokeIdentityArn of Kinesis events.
	// Default arn:<partition>:iam::<account of the source>:role/esmd.
	InvokeIdentityArn string `yaml:"invokeIdentityArn,omitempty"`
	// VisibilityOnError (SQS) sets the visibility timeout of messages of a
	// failed batch; absent keeps the queue's visibility timeout.
	VisibilityOnError *Duration `yaml:"visibilityOnError,omitempty"`
	// VisibilityHeartbeat (SQS) extends the visibility timeout of messages
	// while their batch is being processed.
	VisibilityHeartbeat *bool `yaml:"visibilityHeartbeat,omitempty"`
	// WaitTime (SQS) is the long poll of a receive, 1s to 20s in whole
	// seconds. Default 20s, as Lambda.
	WaitTime *Duration `yaml:"waitTime,omitempty"`
	// InitialPollers (SQS) is how many pollers start, 1 to
	// MaximumConcurrency. Default 5, as Lambda.
	InitialPollers *int `yaml:"initialPollers,omitempty"`
	// MinPollers (SQS) is the floor the pollers scale down to while the
	// queue is empty or the function fails, 1 to initialPollers. Default 2.
	MinPollers *int `yaml:"minPollers,omitempty"`
	// ScaleInterval (SQS) is how often the pollers are scaled, 100ms to
	// 1m. Default 1s.
	ScaleInterval *Duration    `yaml:"scaleInterval,omitempty"`
	RetryBackoff  RetryBackoff `yaml:"retryBackoff,omitempty"`
}

// RetryBackoff is the exponential backoff between retries of a batch.
type RetryBackoff struct {
	// Initial delay; default 100ms.
	Initial *Duration `yaml:"initial,omitempty"`
	// Max delay; default 30s.
	Max *Duration `yaml:"max,omitempty"`
}

// Settings are the effective values of a mapping, ready for the engine.
type Settings struct {
	Name     string
	UUID     string
	Source   Source
	Function string
	Enabled  bool

	BatchSize int
	// BatchingWindow is MaximumBatchingWindowInSeconds.
	BatchingWindow time.Duration
	// StartingPosition is TRIM_HORIZON, LATEST or AT_TIMESTAMP for streams,
	// "" for SQS.
	StartingPosition string
	// StartingPositionTimestamp is set with AT_TIMESTAMP only.
	StartingPositionTimestamp time.Time
	ParallelizationFactor     int
	// MaximumRecordAge is MaximumRecordAgeInSeconds; 0 means no limit
	// (AWS's -1).
	MaximumRecordAge time.Duration
	// MaximumRetryAttempts is -1 for infinite.
	MaximumRetryAttempts       int
	BisectBatchOnFunctionError bool
	ReportBatchItemFailures    bool
	// OnFailure is the on-failure destination, or nil.
	OnFailure *Destination
	// MaximumConcurrency is ScalingConfig.MaximumConcurrency for SQS; when
	// unset it is 1000, AWS's per-mapping ceiling. 0 for streams.
	MaximumConcurrency int

	PollInterval           time.Duration
	ShardDiscoveryInterval time.Duration
	InvokeIdentityArn      string
	// VisibilityOnError is nil when the queue's own timeout applies.
	VisibilityOnError   *time.Duration
	VisibilityHeartbeat bool
	// SQS pollers: the long poll, how many start, the floor, and how often
	// they are scaled. Zero for streams.
	WaitTime       time.Duration
	InitialPollers int
	MinPollers     int
	ScaleInterval  time.Duration
	RetryInitial   time.Duration
	RetryMax       time.Duration
}

// Settings returns the effective values of m. It is meant for a Mapping
// returned by a successful Parse or Load, where every default is applied.
func (m *Mapping) Settings() Settings {
	s := Settings{
		Name:                       m.Name,
		UUID:                       m.UUID,
		Source:                     m.Source,
		Function:                   m.FunctionName,
		Enabled:                    derefOr(m.Enabled, true),
		BatchSize:                  derefOr(m.BatchSize, 0),
		BatchingWindow:             time.Duration(derefOr(m.MaximumBatchingWindowInSeconds, 0)) * time.Second,
		StartingPosition:           m.StartingPosition,
		ParallelizationFactor:      derefOr(m.ParallelizationFactor, 1),
		MaximumRetryAttempts:       derefOr(m.MaximumRetryAttempts, -1),
		BisectBatchOnFunctionError: derefOr(m.BisectBatchOnFunctionError, false),
		OnFailure:                  m.OnFailure,
		PollInterval:               m.ESMD.PollInterval.Std(),
		ShardDiscoveryInterval:     m.ESMD.ShardDiscoveryInterval.Std(),
		InvokeIdentityArn:          m.ESMD.InvokeIdentityArn,
		VisibilityHeartbeat:        derefOr(m.ESMD.VisibilityHeartbeat, false),
		WaitTime:                   m.ESMD.WaitTime.Std(),
		InitialPollers:             derefOr(m.ESMD.InitialPollers, 0),
		MinPollers:                 derefOr(m.ESMD.MinPollers, 0),
		ScaleInterval:              m.ESMD.ScaleInterval.Std(),
		RetryInitial:               m.ESMD.RetryBackoff.Initial.Std(),
		RetryMax:                   m.ESMD.RetryBackoff.Max.Std(),
	}
	if m.StartingPositionTimestamp != nil {
		s.StartingPositionTimestamp = m.StartingPositionTimestamp.Time
	}
	if age := derefOr(m.MaximumRecordAgeInSeconds, -1); age > 0 {
		s.MaximumRecordAge = time.Duration(age) * time.Second
	}
	for _, t := range m.FunctionResponseTypes {
		if t == ReportBatchItemFailures {
			s.ReportBatchItemFailures = true
		}
	}
	if m.ScalingConfig != nil && m.ScalingConfig.MaximumConcurrency != nil {
		s.MaximumConcurrency = *m.ScalingConfig.MaximumConcurrency
	} else if m.Source.Kind == SourceSQS {
		s.MaximumConcurrency = sqsMaxConcurrency
	}
	if m.ESMD.VisibilityOnError != nil {
		v := m.ESMD.VisibilityOnError.Std()
		s.VisibilityOnError = &v
	}
	return s
}

// ReportBatchItemFailures is the one accepted FunctionResponseTypes value.
const ReportBatchItemFailures = "ReportBatchItemFailures"

func derefOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func ptr[T any](v T) *T { return &v }
