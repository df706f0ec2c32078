package config

import (
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is a whole esmd configuration file. After a successful Parse every
// optional field holds its effective value (defaults applied) and each
// Mapping's computed fields (Name, UUID, Source, OnFailure) are set.
//
// A Config is not modified by esmd after loading; it is safe to read from
// several goroutines.
type Config struct {
	AWS         AWS                 `yaml:"aws,omitempty"`
	Functions   map[string]Function `yaml:"functions,omitempty"`
	Checkpoints Checkpoints         `yaml:"checkpoints,omitempty"`
	Server      Server              `yaml:"server,omitempty"`
	Logging     Logging             `yaml:"logging,omitempty"`
	// ShutdownTimeout bounds the graceful drain after the first signal.
	// Default 30s.
	ShutdownTimeout *Duration `yaml:"shutdownTimeout,omitempty"`
	Mappings        []Mapping `yaml:"mappings,omitempty"`
}

// String renders the configuration as YAML with every secret redacted.
func (c *Config) String() string {
	b, err := yaml.Marshal(c)
	if err != nil {
		return "config: " + err.Error()
	}
	return string(b)
}

// AWS holds the region, endpoint overrides and optional static credentials
// used for every AWS client esmd builds.
type AWS struct {
	// Region is the client region. Default: the region of the first
	// mapping's EventSourceArn, else us-east-1.
	Region    string    `yaml:"region,omitempty"`
	Endpoints Endpoints `yaml:"endpoints,omitempty"`
	// Credentials are static credentials, for local servers. When nil the
	// standard AWS credential chain applies.
	Credentials *Credentials `yaml:"credentials,omitempty"`
}

// Endpoints overrides the endpoint URL of each AWS service; an empty string
// keeps the SDK's default.
type Endpoints struct {
	Kinesis         string `yaml:"kinesis,omitempty"`
	DynamoDB        string `yaml:"dynamodb,omitempty"`
	DynamoDBStreams string `yaml:"dynamodbstreams,omitempty"`
	SQS             string `yaml:"sqs,omitempty"`
	SNS             string `yaml:"sns,omitempty"`
	S3              string `yaml:"s3,omitempty"`
	Lambda          string `yaml:"lambda,omitempty"`
	STS             string `yaml:"sts,omitempty"`
}

// Credentials are static AWS credentials. AccessKeyID is an identifier, not
// a secret; the other two are redacted everywhere.
type Credentials struct {
	AccessKeyID     string `yaml:"accessKeyId"`
	SecretAccessKey Secret `yaml:"secretAccessKey"`
	SessionToken    Secret `yaml:"sessionToken,omitempty"`
}

// FunctionKind names how a function is invoked.
type FunctionKind string

// The function kinds.
const (
	FunctionHTTP    FunctionKind = "http"
	FunctionLambda  FunctionKind = "lambda"
	FunctionRuntime FunctionKind = "runtime"
	FunctionNATS    FunctionKind = "nats"
	FunctionExec    FunctionKind = "exec"
)

// Function is one invocation target. Exactly one of its fields is set.
type Function struct {
	HTTP    *HTTPFunction    `yaml:"http,omitempty"`
	Lambda  *LambdaFunction  `yaml:"lambda,omitempty"`
	Runtime *RuntimeFunction `yaml:"runtime,omitempty"`
	NATS    *NATSFunction    `yaml:"nats,omitempty"`
	Exec    *ExecFunction    `yaml:"exec,omitempty"`
}

// Kind reports which kind of function f is, or "" when none is set.
func (f *Function) Kind() FunctionKind {
	switch {
	case f.HTTP != nil:
		return FunctionHTTP
	case f.Lambda != nil:
		return FunctionLambda
	case f.Runtime != nil:
		return FunctionRuntime
	case f.NATS != nil:
		return FunctionNATS
	case f.Exec != nil:
		return FunctionExec
	}
	return ""
}

// Timeout is the effective invocation timeout of f (default 30s for every
// kind).
func (f *Function) Timeout() time.Duration {
	switch {
	case f.HTTP != nil:
		return f.HTTP.Timeout.Std()
	case f.Lambda != nil:
		return f.Lambda.Timeout.Std()
	case f.Runtime != nil:
		return f.Runtime.Timeout.Std()
	case f.NATS != nil:
		return f.NATS.Timeout.Std()
	case f.Exec != nil:
		return f.Exec.Timeout.Std()
	}
	return 0
}

// HTTPFunction is invoked by POSTing the event to URL.
type HTTPFunction struct {
	URL     string    `yaml:"url"`
	Timeout *Duration `yaml:"timeout,omitempty"`
	// Headers are added to every request; their values are secrets.
	Headers map[string]Secret `yaml:"headers,omitempty"`
}

// LambdaFunction is invoked with the Lambda Invoke API.
type LambdaFunction struct {
	// FunctionName is a name, a full or partial ARN.
	FunctionName string    `yaml:"functionName"`
	Qualifier    string    `yaml:"qualifier,omitempty"`
	Timeout      *Duration `yaml:"timeout,omitempty"`
	// RIECompat talks to the Lambda Runtime Interface Emulator, which serves
	// only the function name "function" and no qualifiers.
	RIECompat bool `yaml:"rieCompat,omitempty"`
}

// RuntimeFunction runs handler processes that speak the Lambda Runtime API,
// hosted by esmd.
type RuntimeFunction struct {
	// Command is run as given, without a shell.
	Command []string `yaml:"command"`
	// Concurrency is the number of handler processes. Default 1.
	Concurrency *int      `yaml:"concurrency,omitempty"`
	Timeout     *Duration `yaml:"timeout,omitempty"`
	// Environment is added to esmd's own environment; values are secrets.
	Environment map[string]Secret `yaml:"environment,omitempty"`
	// MemorySize is reported to the handler in MB (128–10240). Default 128.
	MemorySize *int `yaml:"memorySize,omitempty"`
}

// NATSFunction is invoked by a NATS request to Subject.
type NATSFunction struct {
	URL     string    `yaml:"url"`
	Subject string    `yaml:"subject"`
	Timeout *Duration `yaml:"timeout,omitempty"`
}

// ExecFunction runs Command once per batch, with the event on stdin.
type ExecFunction struct {
	Command []string  `yaml:"command"`
	Timeout *Duration `yaml:"timeout,omitempty"`
}

// Checkpoints configures where stream positions are stored.
type Checkpoints struct {
	File *FileCheckpoints `yaml:"file,omitempty"`
	// DynamoDB is reserved; it is rejected as not supported yet.
	DynamoDB *DynamoDBCheckpoints `yaml:"dynamodb,omitempty"`
	// Interval between saves; 0 (the default) saves after every batch.
	Interval *Duration `yaml:"interval,omitempty"`
}

// FileCheckpoints is the embedded file store.
type FileCheckpoints struct {
	// Path of the store file. Default ./esmd-state/checkpoints.db.
	Path string `yaml:"path,omitempty"`
}

// DynamoDBCheckpoints is a checkpoint table (not supported yet).
type DynamoDBCheckpoints struct {
	Table string `yaml:"table,omitempty"`
}

// Server configures the HTTP server for /metrics, /healthz, /readyz and
// /mappings.
type Server struct {
	// Listen is host:port. Default 127.0.0.1:9400; "" or "off" disables
	// the server (after Parse, a disabled server has Listen == "").
	Listen *string `yaml:"listen,omitempty"`
	// AuthToken, when set, is required as a bearer token.
	AuthToken Secret `yaml:"authToken,omitempty"`
	// Pprof serves Go's runtime profiles under /debug/pprof/. Default
	// false.
	Pprof bool `yaml:"pprof,omitempty"`
}

// Address returns the listen address, or "" when the server is disabled.
func (s *Server) Address() string {
	if s.Listen == nil {
		return ""
	}
	return *s.Listen
}

// Logging configures esmd's log output (always to stderr).
type Logging struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level,omitempty"`
	// Format is text (default) or json.
	Format string `yaml:"format,omitempty"`
	// Payloads allows logging record payloads at debug level. Default false.
	Payloads bool `yaml:"payloads,omitempty"`
}
