package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/esmd-dev/esmd/internal/names"
	"github.com/esmd-dev/esmd/pollers/generator"
)

// SourceKind is the type of an event source.
type SourceKind string

// The source kinds. A Kinesis enhanced fan-out consumer is SourceKinesis
// with Source.Consumer set; an SQS FIFO queue is SourceSQS with Source.FIFO.
const (
	SourceKinesis  SourceKind = "kinesis"
	SourceDynamoDB SourceKind = "dynamodb"
	SourceSQS      SourceKind = "sqs"
	// SourceGenerator is esmd's synthetic stream (generator://NAME?…), for
	// load tests and demos.
	SourceGenerator SourceKind = "generator"
)

// Source is a parsed EventSourceArn.
type Source struct {
	Kind SourceKind
	// ARN is the EventSourceArn as written.
	ARN       string
	Partition string
	// Region is taken as written: DynamoDB Local uses "ddblocal".
	Region  string
	Account string
	// Resource is the stream, table or queue name.
	Resource string
	// Consumer is the enhanced fan-out consumer name (Kinesis only).
	Consumer string
	// StreamLabel is the DynamoDB stream label (DynamoDB only).
	StreamLabel string
	// FIFO reports an SQS FIFO queue (name ends in .fifo).
	FIFO bool
	// Generator is the parsed generator:// URL of a generator source, with
	// its defaults applied.
	Generator *generator.Spec
}

// IsStream reports a Kinesis or DynamoDB stream source, or a generator
// (which behaves as a stream).
func (s Source) IsStream() bool {
	return s.Kind == SourceKinesis || s.Kind == SourceDynamoDB || s.Kind == SourceGenerator
}

// EFO reports a Kinesis enhanced fan-out consumer.
func (s Source) EFO() bool { return s.Kind == SourceKinesis && s.Consumer != "" }

// StreamARN is the ARN of the Kinesis stream of a consumer ARN, and the
// stream ARN that a generator's records name; for other sources it is ARN.
func (s Source) StreamARN() string {
	if s.Generator != nil {
		return s.Generator.StreamARN()
	}
	if s.EFO() {
		if i := strings.Index(s.ARN, "/consumer/"); i >= 0 {
			return s.ARN[:i]
		}
	}
	return s.ARN
}

// label names the source type in messages.
func (s Source) label() string {
	switch {
	case s.EFO():
		return "Kinesis enhanced fan-out consumer"
	case s.Kind == SourceGenerator:
		return "generator source"
	case s.Kind == SourceKinesis:
		return "Kinesis stream"
	case s.Kind == SourceDynamoDB:
		return "DynamoDB stream"
	case s.FIFO:
		return "SQS FIFO queue"
	}
	return "SQS queue"
}

// limitLabel names the source type in range messages ("the Kinesis maximum").
func (s Source) limitLabel() string {
	switch {
	case s.Kind == SourceKinesis, s.Kind == SourceGenerator:
		return "Kinesis"
	case s.Kind == SourceDynamoDB:
		return "DynamoDB Streams"
	case s.FIFO:
		return "SQS FIFO"
	}
	return "SQS"
}

var (
	partitionRE = regexp.MustCompile(`^aws[a-zA-Z0-9-]*$`)
	accountRE   = regexp.MustCompile(`^[0-9]{12}$`)
	// Stream, table, queue and consumer names: letters, digits, _ . -
	nameRE        = names.New(`^[a-zA-Z0-9_.-]+$`, 1, 255)
	regionRE      = names.New(`^[a-zA-Z0-9-]+$`, 1, 64)
	errSourceForm = errors.New("expected arn:aws:kinesis:REGION:ACCOUNT:stream/NAME[/consumer/NAME:TIMESTAMP], " +
		"arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/stream/LABEL or arn:aws:sqs:REGION:ACCOUNT:QUEUE")
)

type arnParts struct {
	partition, service, region, account, resource string
}

func splitARN(s string) (arnParts, bool) {
	f := strings.SplitN(s, ":", 6)
	if len(f) != 6 || f[0] != "arn" || !partitionRE.MatchString(f[1]) {
		return arnParts{}, false
	}
	return arnParts{f[1], f[2], f[3], f[4], f[5]}, true
}

// ParseSource parses an EventSourceArn. Regions are not checked against a
// list, so local servers' regions (ddblocal) are accepted.
func ParseSource(arn string) (Source, error) {
	if strings.HasPrefix(arn, generator.Scheme) {
		spec, err := generator.ParseURL(arn)
		if err != nil {
			return Source{}, err
		}
		return Source{Kind: SourceGenerator, ARN: arn, Partition: "aws", Region: generator.Region,
			Account: generator.Account, Resource: spec.Name, Generator: &spec}, nil
	}
	p, ok := splitARN(arn)
	if !ok {
		return Source{}, fmt.Errorf("%q is not an ARN: %w", arn, errSourceForm)
	}
	src := Source{ARN: arn, Partition: p.partition, Region: p.region, Account: p.account}
	if !regionRE.MatchString(p.region) {
		return Source{}, fmt.Errorf("%q has no valid region", arn)
	}
	if !accountRE.MatchString(p.account) {
		return Source{}, fmt.Errorf("%q: account %q is not 12 digits", arn, p.account)
	}
	switch p.service {
	case "kinesis":
		src.Kind = SourceKinesis
		parts := strings.Split(p.resource, "/")
		switch {
		case len(parts) == 2 && parts[0] == "stream" && nameRE.MatchString(parts[1]):
			src.Resource = parts[1]
		case len(parts) == 4 && parts[0] == "stream" && nameRE.MatchString(parts[1]) && parts[2] == "consumer":
			name, ts, ok := strings.Cut(parts[3], ":")
			if !ok || !nameRE.MatchString(name) || !isDigits(ts) {
				return Source{}, fmt.Errorf("%q: a Kinesis consumer ARN ends in /consumer/NAME:CREATION_TIMESTAMP", arn)
			}
			src.Resource, src.Consumer = parts[1], name
		default:
			return Source{}, fmt.Errorf("%q is not a Kinesis stream or consumer ARN: %w", arn, errSourceForm)
		}
	case "dynamodb":
		src.Kind = SourceDynamoDB
		parts := strings.Split(p.resource, "/")
		if len(parts) != 4 || parts[0] != "table" || parts[2] != "stream" || !nameRE.MatchString(parts[1]) || parts[3] == "" {
			return Source{}, fmt.Errorf("%q is not a DynamoDB stream ARN (a table ARN is not enough: add /stream/LABEL): %w", arn, errSourceForm)
		}
		src.Resource, src.StreamLabel = parts[1], parts[3]
	case "sqs":
		src.Kind = SourceSQS
		if !nameRE.MatchString(p.resource) || len(p.resource) > 80 {
			return Source{}, fmt.Errorf("%q is not an SQS queue ARN: %w", arn, errSourceForm)
		}
		src.Resource = p.resource
		src.FIFO = strings.HasSuffix(p.resource, ".fifo")
	default:
		return Source{}, fmt.Errorf("%q: service %q cannot be an event source: %w", arn, p.service, errSourceForm)
	}
	return src, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// DestinationKind is the type of an on-failure destination.
type DestinationKind string

// The destination kinds.
const (
	DestinationSQS   DestinationKind = "sqs"
	DestinationSNS   DestinationKind = "sns"
	DestinationS3    DestinationKind = "s3"
	DestinationKafka DestinationKind = "kafka"
	DestinationNATS  DestinationKind = "nats"
	DestinationFile  DestinationKind = "file"
	DestinationHTTP  DestinationKind = "http"
)

// Destination is a parsed DestinationConfig.OnFailure.Destination.
type Destination struct {
	Kind DestinationKind
	// ARN is set for sqs, sns and s3.
	ARN string
	// URL is set for kafka, nats, file and http: the destination as written.
	URL string
	// Region, Account and Name come from an ARN: Name is the queue, topic
	// or bucket name. S3 ARNs carry no region or account.
	Region, Account, Name string
	// Brokers and Topic are set for kafka.
	Brokers []string
	Topic   string
	// Server (nats://host:port) and Subject are set for nats.
	Server  string
	Subject string
	// Path is set for file: absolute, or relative to esmd's working
	// directory.
	Path string
}

const destinationForms = "expected an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:QUEUE), an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC), " +
	"an S3 bucket ARN (arn:aws:s3:::BUCKET), kafka://HOST:PORT[,HOST:PORT]/TOPIC, nats://HOST:PORT/SUBJECT, " +
	"file:///PATH.jsonl or an http(s):// URL"

// ParseDestination parses an on-failure destination.
func ParseDestination(s string) (*Destination, error) {
	scheme, rest, hasScheme := strings.Cut(s, "://")
	switch {
	case strings.HasPrefix(s, "arn:"):
		return parseDestinationARN(s)
	case !hasScheme:
	case scheme == "kafka":
		hosts, topic, _ := strings.Cut(rest, "/")
		if hosts == "" || !names.KafkaTopic.MatchString(topic) {
			return nil, fmt.Errorf("%q: expected kafka://HOST:PORT[,HOST:PORT]/TOPIC", s)
		}
		d := &Destination{Kind: DestinationKafka, URL: s, Topic: topic}
		for _, h := range strings.Split(hosts, ",") {
			if err := checkHostPort(h, true); err != nil {
				return nil, fmt.Errorf("%q: broker %q: %w", s, h, err)
			}
			d.Brokers = append(d.Brokers, h)
		}
		return d, nil
	case scheme == "nats":
		host, subject, _ := strings.Cut(rest, "/")
		if err := checkHostPort(host, false); err != nil {
			return nil, fmt.Errorf("%q: server %q: %w", s, host, err)
		}
		if !validSubject(subject) {
			return nil, fmt.Errorf("%q: expected nats://HOST:PORT/SUBJECT with a subject free of spaces and wildcards", s)
		}
		return &Destination{Kind: DestinationNATS, URL: s, Server: "nats://" + host, Subject: subject}, nil
	case scheme == "file":
		if rest == "" || strings.HasSuffix(rest, "/") || strings.ContainsRune(rest, 0) {
			return nil, fmt.Errorf("%q: expected file:///ABSOLUTE/PATH.jsonl or file://RELATIVE/PATH.jsonl", s)
		}
		return &Destination{Kind: DestinationFile, URL: s, Path: rest}, nil
	case scheme == "http" || scheme == "https":
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("%q is not a valid %s URL", s, scheme)
		}
		return &Destination{Kind: DestinationHTTP, URL: s}, nil
	}
	return nil, fmt.Errorf("%q is not a supported destination: %s", s, destinationForms)
}

func parseDestinationARN(s string) (*Destination, error) {
	p, ok := splitARN(s)
	if !ok {
		return nil, fmt.Errorf("%q is not a valid ARN: %s", s, destinationForms)
	}
	switch p.service {
	case "sqs", "sns":
		if p.region == "" || !accountRE.MatchString(p.account) {
			return nil, fmt.Errorf("%q: an %s ARN needs a region and a 12-digit account", s, strings.ToUpper(p.service))
		}
		kind, re := DestinationSQS, nameRE
		if p.service == "sns" {
			kind, re = DestinationSNS, names.SNSTopic
		}
		if !re.MatchString(p.resource) {
			return nil, fmt.Errorf("%q: %q is not a valid %s name", s, p.resource, map[DestinationKind]string{DestinationSQS: "queue", DestinationSNS: "topic"}[kind])
		}
		return &Destination{Kind: kind, ARN: s, Region: p.region, Account: p.account, Name: p.resource}, nil
	case "s3":
		if p.region != "" || p.account != "" || !names.S3Bucket.MatchString(p.resource) {
			return nil, fmt.Errorf("%q: expected an S3 bucket ARN arn:aws:s3:::BUCKET", s)
		}
		return &Destination{Kind: DestinationS3, ARN: s, Name: p.resource}, nil
	}
	return nil, fmt.Errorf("%q: %s cannot be a destination: %s", s, p.service, destinationForms)
}

func checkHostPort(h string, needPort bool) error {
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		if needPort || h == "" || strings.ContainsAny(h, "/ ") {
			return errors.New("expected HOST:PORT")
		}
		return nil
	}
	if host == "" {
		return errors.New("missing host")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}

func validSubject(s string) bool {
	if s == "" || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	return !strings.ContainsAny(s, " \t\r\n*>")
}
