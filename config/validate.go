package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/esmd-dev/esmd/internal/names"
	"github.com/google/uuid"
)

// Defaults that do not depend on the source type.
const (
	DefaultRegion                 = "us-east-1"
	DefaultFunctionTimeout        = 30 * time.Second
	DefaultShutdownTimeout        = 30 * time.Second
	DefaultCheckpointPath         = "./esmd-state/checkpoints.db"
	DefaultListen                 = "127.0.0.1:9400"
	DefaultShardDiscoveryInterval = 30 * time.Second
	DefaultRetryInitial           = 100 * time.Millisecond
	DefaultRetryMax               = 30 * time.Second
	DefaultRuntimeConcurrency     = 1
	DefaultMemorySize             = 128

	// maxLambdaTimeout is Lambda's function timeout ceiling (15 minutes).
	maxLambdaTimeout = 900 * time.Second
	// sqsMaxConcurrency is AWS's per-mapping ceiling of concurrent SQS
	// batches when ScalingConfig is not set.
	sqsMaxConcurrency = 1000
	// maxVisibility is SQS's largest visibility timeout (12 hours).
	maxVisibility = 12 * time.Hour
)

// Default poll intervals after an empty poll, per source.
const (
	DefaultKinesisPollInterval  = time.Second            // Lambda polls each shard about once a second
	DefaultDynamoDBPollInterval = 250 * time.Millisecond // Lambda polls DynamoDB shards 4 times a second
)

// mappingNamespace is the UUID v5 namespace of mapping UUIDs derived from
// mapping names. It never changes: derived UUIDs are stable across
// releases.
var mappingNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/esmd-dev/esmd#event-source-mapping"))

var (
	functionNameRE = names.New(`^[a-zA-Z0-9_-]+$`, 1, 64)
	mappingNameRE  = names.New(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`, 1, 128)
	headerNameRE   = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// complete applies defaults and validates c, reporting into p.
func (c *Config) complete(p *problems) {
	c.checkAWS(p)
	c.checkFunctions(p)
	c.checkCheckpoints(p)
	c.checkServer(p)
	c.checkLogging(p)
	if c.ShutdownTimeout == nil {
		c.ShutdownTimeout = newDuration(DefaultShutdownTimeout)
	} else if c.ShutdownTimeout.Std() <= 0 {
		p.add("shutdownTimeout", "%s must be positive", c.ShutdownTimeout)
	}
	c.checkMappings(p)
	if c.AWS.Region == "" {
		c.AWS.Region = DefaultRegion
		for _, m := range c.Mappings {
			if m.Source.Region != "" {
				c.AWS.Region = m.Source.Region
				break
			}
		}
	}
}

func (c *Config) checkAWS(p *problems) {
	if c.AWS.Region != "" && !regionRE.MatchString(c.AWS.Region) {
		p.add("aws.region", "%q is not a region name", c.AWS.Region)
	}
	e := &c.AWS.Endpoints
	for _, ep := range []struct {
		key string
		val string
	}{
		{"kinesis", e.Kinesis}, {"dynamodb", e.DynamoDB}, {"dynamodbstreams", e.DynamoDBStreams},
		{"sqs", e.SQS}, {"sns", e.SNS}, {"s3", e.S3}, {"lambda", e.Lambda}, {"sts", e.STS},
	} {
		if ep.val != "" && !isHTTPURL(ep.val) {
			p.add("aws.endpoints."+ep.key, "%q is not an http:// or https:// URL", ep.val)
		}
	}
	if cr := c.AWS.Credentials; cr != nil {
		if cr.AccessKeyID == "" {
			p.add("aws.credentials.accessKeyId", "is required with static credentials")
		}
		if cr.SecretAccessKey == "" {
			p.add("aws.credentials.secretAccessKey", "is required with static credentials")
		}
	}
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

func (c *Config) checkFunctions(p *problems) {
	names := make([]string, 0, len(c.Functions))
	for name := range c.Functions {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := c.Functions[name]
		base := "functions." + name
		if !functionNameRE.MatchString(name) {
			p.add(base, "function name %q must be 1 to 64 letters, digits, - or _", name)
		}
		var kinds []string
		for _, k := range []struct {
			name string
			set  bool
		}{
			{"http", f.HTTP != nil}, {"lambda", f.Lambda != nil}, {"runtime", f.Runtime != nil},
			{"nats", f.NATS != nil}, {"exec", f.Exec != nil},
		} {
			if k.set {
				kinds = append(kinds, k.name)
			}
		}
		switch len(kinds) {
		case 0:
			p.add(base, "needs exactly one of http, lambda, runtime, nats or exec")
		case 1:
		default:
			p.add(base, "has %s: choose exactly one", strings.Join(kinds, " and "))
		}
		if h := f.HTTP; h != nil {
			b := base + ".http"
			if h.URL == "" {
				p.add(b+".url", "is required")
			} else if !isHTTPURL(h.URL) {
				p.add(b+".url", "%q is not an http:// or https:// URL", h.URL)
			}
			h.Timeout = checkTimeout(p, b+".timeout", h.Timeout, 0)
			for k := range h.Headers {
				if !headerNameRE.MatchString(k) {
					p.add(b+".headers."+k, "%q is not a valid HTTP header name", k)
				}
			}
		}
		if l := f.Lambda; l != nil {
			b := base + ".lambda"
			if l.FunctionName == "" {
				p.add(b+".functionName", "is required")
			}
			l.Timeout = checkTimeout(p, b+".timeout", l.Timeout, maxLambdaTimeout)
		}
		if r := f.Runtime; r != nil {
			b := base + ".runtime"
			checkCommand(p, b+".command", r.Command)
			r.Concurrency = checkInt(p, b+".concurrency", r.Concurrency, DefaultRuntimeConcurrency, 1, 1000, "")
			r.MemorySize = checkInt(p, b+".memorySize", r.MemorySize, DefaultMemorySize, 128, 10240, "Lambda")
			r.Timeout = checkTimeout(p, b+".timeout", r.Timeout, maxLambdaTimeout)
			for k := range r.Environment {
				if !validVarName(k) {
					p.add(b+".environment."+k, "%q is not a valid environment variable name", k)
				}
			}
		}
		if n := f.NATS; n != nil {
			b := base + ".nats"
			if n.URL == "" {
				p.add(b+".url", "is required")
			} else if u, err := url.Parse(n.URL); err != nil || u.Host == "" || !slices.Contains([]string{"nats", "tls", "ws", "wss"}, u.Scheme) {
				p.add(b+".url", "%q is not a nats:// (or tls://, ws://, wss://) URL", n.URL)
			}
			if n.Subject == "" {
				p.add(b+".subject", "is required")
			} else if !validSubject(n.Subject) {
				p.add(b+".subject", "%q is not a valid NATS subject (no spaces or wildcards)", n.Subject)
			}
			n.Timeout = checkTimeout(p, b+".timeout", n.Timeout, 0)
		}
		if x := f.Exec; x != nil {
			b := base + ".exec"
			checkCommand(p, b+".command", x.Command)
			x.Timeout = checkTimeout(p, b+".timeout", x.Timeout, 0)
		}
		c.Functions[name] = f
	}
}

func checkCommand(p *problems, path string, cmd []string) {
	if len(cmd) == 0 || cmd[0] == "" {
		p.add(path, "is required: the program and its arguments, as a list")
	}
}

// checkTimeout defaults a timeout to 30s and checks it is positive and at
// most max (0: no maximum).
func checkTimeout(p *problems, path string, d *Duration, max time.Duration) *Duration {
	if d == nil {
		return newDuration(DefaultFunctionTimeout)
	}
	switch v := d.Std(); {
	case v <= 0:
		p.add(path, "%s must be positive", v)
	case max > 0 && v > max:
		p.add(path, "%s is above the maximum %s", v, max)
	}
	return d
}

// checkInt defaults an integer and checks it lies in [lo, hi]; who names
// whose limits these are ("Kinesis"), or "".
func checkInt(p *problems, path string, v *int, def, lo, hi int, who string) *int {
	if v == nil {
		return ptr(def)
	}
	rangeCheck(p, path, *v, lo, hi, who)
	return v
}

func rangeCheck(p *problems, path string, v, lo, hi int, who string) {
	if who != "" {
		who += " "
	}
	switch {
	case v < lo:
		p.add(path, "%d is below the %sminimum %d", v, who, lo)
	case v > hi:
		p.add(path, "%d is above the %smaximum %d", v, who, hi)
	}
}

// checkInfinite defaults to -1 and checks v is -1 (infinite) or in [lo, hi].
func checkInfinite(p *problems, path string, v *int, lo, hi int) *int {
	if v == nil {
		return ptr(-1)
	}
	switch {
	case *v == -1:
	case *v < lo:
		p.add(path, "%d is below the minimum %d (or -1 for infinite)", *v, lo)
	case *v > hi:
		p.add(path, "%d is above the maximum %d (or -1 for infinite)", *v, hi)
	}
	return v
}

func (c *Config) checkCheckpoints(p *problems) {
	ck := &c.Checkpoints
	if ck.DynamoDB != nil {
		p.add("checkpoints.dynamodb", "DynamoDB checkpoints are not supported yet; use checkpoints.file")
	}
	if ck.File == nil {
		ck.File = &FileCheckpoints{}
	}
	if _, given := p.lines["checkpoints.file.path"]; given && ck.File.Path == "" {
		// Most likely a ${VAR} that is set but empty: the default, relative
		// to the working folder, may be a container's throwaway layer.
		p.add("checkpoints.file.path", "is empty; give the path of the checkpoint file, or leave the key out for the default %s", DefaultCheckpointPath)
	} else if ck.File.Path == "" {
		ck.File.Path = DefaultCheckpointPath
	} else if strings.HasSuffix(ck.File.Path, "/") {
		p.add("checkpoints.file.path", "%q names a folder; give the path of a file in it", ck.File.Path)
	}
	if ck.Interval == nil {
		ck.Interval = newDuration(0)
	} else if ck.Interval.Std() < 0 {
		p.add("checkpoints.interval", "%s must not be negative (0 saves after every batch)", ck.Interval)
	}
}

func (c *Config) checkServer(p *problems) {
	s := &c.Server
	switch {
	case s.Listen == nil:
		s.Listen = ptr(DefaultListen)
	case *s.Listen == "" || *s.Listen == "off":
		s.Listen = ptr("")
	default:
		_, port, err := net.SplitHostPort(*s.Listen)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 0 || n > 65535 {
			p.add("server.listen", "%q is not HOST:PORT (or \"off\" to disable the server)", *s.Listen)
		}
	}
}

func (c *Config) checkLogging(p *problems) {
	l := &c.Logging
	switch l.Level {
	case "":
		l.Level = "info"
	case "debug", "info", "warn", "error":
	default:
		p.add("logging.level", "%q is not one of debug, info, warn, error", l.Level)
	}
	switch l.Format {
	case "":
		l.Format = "text"
	case "text", "json":
	default:
		p.add("logging.format", "%q is not one of text, json", l.Format)
	}
}

func (c *Config) checkMappings(p *problems) {
	if len(c.Mappings) == 0 {
		p.add("mappings", "at least one mapping is required")
		return
	}
	known := make([]string, 0, len(c.Functions))
	for name := range c.Functions {
		known = append(known, name)
	}
	slices.Sort(known)
	names := map[string]int{}
	uuids := map[string]int{}
	for i := range c.Mappings {
		m := &c.Mappings[i]
		base := fmt.Sprintf("mappings[%d]", i)
		m.check(p, base, c.Functions, known)
		if m.Name != "" {
			if j, dup := names[m.Name]; dup {
				at := base
				if m.ESMD.Name != "" {
					at = base + ".esmd.name"
				}
				p.add(at, "name %q is already used by mappings[%d]; give each mapping a unique esmd.name", m.Name, j)
			} else {
				names[m.Name] = i
			}
		}
		if m.UUID != "" {
			if j, dup := uuids[m.UUID]; dup && m.ESMD.UUID != "" {
				p.add(base+".esmd.uuid", "%s is already used by mappings[%d]", m.UUID, j)
			} else if !dup {
				uuids[m.UUID] = i
			}
		}
	}
}

var startingPositions = []string{"TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"}

func article(label string) string {
	if strings.HasPrefix(label, "SQS") {
		return "an " + label
	}
	return "a " + label
}

// check applies defaults to one mapping and validates it.
func (m *Mapping) check(p *problems, base string, fns map[string]Function, known []string) {
	at := func(key string) string { return base + "." + key }
	e := &m.ESMD

	srcOK := false
	if m.EventSourceArn == "" {
		p.add(at("EventSourceArn"), "is required")
	} else if src, err := ParseSource(m.EventSourceArn); err != nil {
		p.add(at("EventSourceArn"), "%v", err)
	} else {
		m.Source, srcOK = src, true
	}

	switch _, ok := fns[m.FunctionName]; {
	case m.FunctionName == "":
		p.add(at("FunctionName"), "is required")
	case !ok && len(known) == 0:
		p.add(at("FunctionName"), "%q is not defined: the functions section is empty", m.FunctionName)
	case !ok:
		p.add(at("FunctionName"), "%q is not defined under functions (defined: %s)", m.FunctionName, strings.Join(known, ", "))
	}

	if m.Enabled == nil {
		m.Enabled = ptr(true)
	}
	if m.FilterCriteria != nil {
		p.add(at("FilterCriteria"), "FilterCriteria is not supported yet")
	}
	if m.TumblingWindowInSeconds != nil {
		p.add(at("TumblingWindowInSeconds"), "TumblingWindowInSeconds is not supported yet")
	}
	for j, t := range m.FunctionResponseTypes {
		if t != ReportBatchItemFailures {
			p.add(fmt.Sprintf("%s[%d]", at("FunctionResponseTypes"), j), "%q is not a response type (the only one is ReportBatchItemFailures)", t)
		}
	}
	if dc := m.DestinationConfig; dc != nil {
		if dc.OnSuccess != nil {
			p.add(at("DestinationConfig.OnSuccess"), "on-success destinations are not supported; only OnFailure is")
		}
		if dc.OnFailure != nil && dc.OnFailure.Destination == "" {
			// Most likely a ${VAR} that is set but empty. Without a
			// destination, given-up batches are dropped: never so by
			// accident.
			p.add(at("DestinationConfig.OnFailure.Destination"), "is empty; give the destination's ARN or URL, or leave OnFailure out to drop given-up batches with an error log")
		} else if dc.OnFailure != nil {
			if d, err := ParseDestination(dc.OnFailure.Destination); err != nil {
				p.add(at("DestinationConfig.OnFailure.Destination"), "%v", err)
			} else {
				m.OnFailure = d
			}
		}
	}

	// esmd: block, source independent.
	if e.Name != "" && !mappingNameRE.MatchString(e.Name) {
		p.add(at("esmd.name"), "%q must start with a letter or digit and hold at most 128 letters, digits, _ . or -", e.Name)
	}
	uuidOK := true
	if e.UUID != "" {
		if u, err := uuid.Parse(e.UUID); err != nil || len(e.UUID) != 36 {
			p.add(at("esmd.uuid"), "%q is not a UUID like 6f1d2c3b-0a4e-4c2f-9b8d-1e2f3a4b5c6d", e.UUID)
			uuidOK = false
		} else {
			m.UUID = u.String()
		}
	}
	if e.PollInterval != nil && e.PollInterval.Std() < 0 {
		p.add(at("esmd.pollInterval"), "%s must not be negative", e.PollInterval)
	}
	if e.InvokeIdentityArn != "" {
		if _, ok := splitARN(e.InvokeIdentityArn); !ok {
			p.add(at("esmd.invokeIdentityArn"), "%q is not an ARN", e.InvokeIdentityArn)
		}
	}
	rb := &e.RetryBackoff
	if rb.Initial == nil {
		rb.Initial = newDuration(DefaultRetryInitial)
	} else if rb.Initial.Std() <= 0 {
		p.add(at("esmd.retryBackoff.initial"), "%s must be positive", rb.Initial)
	}
	if rb.Max == nil {
		rb.Max = newDuration(max(DefaultRetryMax, rb.Initial.Std()))
	} else if rb.Max.Std() < rb.Initial.Std() {
		p.add(at("esmd.retryBackoff.max"), "%s is below retryBackoff.initial %s", rb.Max, rb.Initial)
	}

	// Name and UUID.
	switch {
	case e.Name != "":
		m.Name = e.Name
	case m.FunctionName != "" && srcOK:
		m.Name = m.FunctionName + "-" + m.Source.Resource
	}
	if m.UUID == "" && uuidOK && m.Name != "" {
		m.UUID = uuid.NewSHA1(mappingNamespace, []byte(m.Name)).String()
	}

	if !srcOK {
		return
	}
	src := m.Source
	if e.InvokeIdentityArn == "" {
		e.InvokeIdentityArn = fmt.Sprintf("arn:%s:iam::%s:role/esmd", src.Partition, src.Account)
	}
	if src.IsStream() {
		m.checkStream(p, at)
	} else {
		m.checkSQS(p, at)
	}
}

func (m *Mapping) checkStream(p *problems, at func(string) string) {
	src, e := m.Source, &m.ESMD
	label := src.label()
	// BatchSize: AWS allows up to 10,000 for both stream types today; the
	// 2020 developer guide capped DynamoDB Streams at 1,000 (CDK still does).
	m.BatchSize = checkInt(p, at("BatchSize"), m.BatchSize, 100, 1, 10000, src.limitLabel())

	switch {
	case m.MaximumBatchingWindowInSeconds == nil:
		m.MaximumBatchingWindowInSeconds = ptr(0)
	case src.EFO() && *m.MaximumBatchingWindowInSeconds != 0:
		p.add(at("MaximumBatchingWindowInSeconds"), "does not apply to %s", article(label))
	default:
		rangeCheck(p, at("MaximumBatchingWindowInSeconds"), *m.MaximumBatchingWindowInSeconds, 0, 300, "")
	}

	switch sp := m.StartingPosition; {
	case sp == "" && src.Kind == SourceGenerator:
		m.StartingPosition = "TRIM_HORIZON"
	case sp == "AT_TIMESTAMP" && src.Kind == SourceGenerator:
		p.add(at("StartingPosition"), "AT_TIMESTAMP does not apply to a generator source; use TRIM_HORIZON")
	case sp == "":
		p.add(at("StartingPosition"), "is required for %s: TRIM_HORIZON, LATEST or AT_TIMESTAMP", article(label))
	case !slices.Contains(startingPositions, sp):
		p.add(at("StartingPosition"), "%q is not one of TRIM_HORIZON, LATEST, AT_TIMESTAMP", sp)
	case sp == "AT_TIMESTAMP" && src.Kind == SourceDynamoDB:
		p.add(at("StartingPosition"), "AT_TIMESTAMP is supported for Kinesis only; use TRIM_HORIZON or LATEST")
	case sp == "AT_TIMESTAMP" && m.StartingPositionTimestamp == nil:
		p.add(at("StartingPositionTimestamp"), "is required with StartingPosition AT_TIMESTAMP")
	}
	if m.StartingPositionTimestamp != nil && m.StartingPosition != "AT_TIMESTAMP" {
		p.add(at("StartingPositionTimestamp"), "applies only with StartingPosition AT_TIMESTAMP")
	}

	m.ParallelizationFactor = checkInt(p, at("ParallelizationFactor"), m.ParallelizationFactor, 1, 1, 10, "")
	m.MaximumRecordAgeInSeconds = checkInfinite(p, at("MaximumRecordAgeInSeconds"), m.MaximumRecordAgeInSeconds, 60, 604800)
	m.MaximumRetryAttempts = checkInfinite(p, at("MaximumRetryAttempts"), m.MaximumRetryAttempts, 0, 10000)
	if m.BisectBatchOnFunctionError == nil {
		m.BisectBatchOnFunctionError = ptr(false)
	}
	if m.ScalingConfig != nil {
		p.add(at("ScalingConfig"), "does not apply to %s (it bounds SQS pollers)", article(label))
	}
	if e.VisibilityOnError != nil {
		p.add(at("esmd.visibilityOnError"), "applies only to SQS queues")
	}
	if e.VisibilityHeartbeat != nil {
		p.add(at("esmd.visibilityHeartbeat"), "applies only to SQS queues")
	}
	for _, k := range []struct {
		key string
		set bool
	}{{"waitTime", e.WaitTime != nil}, {"initialPollers", e.InitialPollers != nil},
		{"minPollers", e.MinPollers != nil}, {"scaleInterval", e.ScaleInterval != nil}} {
		if k.set {
			p.add(at("esmd."+k.key), "applies only to SQS queues")
		}
	}

	switch {
	case e.ShardDiscoveryInterval == nil:
		e.ShardDiscoveryInterval = newDuration(DefaultShardDiscoveryInterval)
	case e.ShardDiscoveryInterval.Std() <= 0:
		p.add(at("esmd.shardDiscoveryInterval"), "%s must be positive", e.ShardDiscoveryInterval)
	}
	switch {
	case src.EFO() && e.PollInterval != nil && e.PollInterval.Std() != 0:
		p.add(at("esmd.pollInterval"), "does not apply to %s: records are pushed", article(label))
	case e.PollInterval != nil:
	case src.EFO(), src.Kind == SourceGenerator:
		e.PollInterval = newDuration(0)
	case src.Kind == SourceKinesis:
		e.PollInterval = newDuration(DefaultKinesisPollInterval)
	default:
		e.PollInterval = newDuration(DefaultDynamoDBPollInterval)
	}
}

func (m *Mapping) checkSQS(p *problems, at func(string) string) {
	src, e := m.Source, &m.ESMD
	label := src.label()
	notSQS := func(key, hint string) {
		p.add(at(key), "does not apply to %s%s", article(label), hint)
	}

	hi := 10000
	if src.FIFO {
		hi = 10
	}
	m.BatchSize = checkInt(p, at("BatchSize"), m.BatchSize, 10, 1, hi, src.limitLabel())
	switch w := m.MaximumBatchingWindowInSeconds; {
	case w == nil:
		m.MaximumBatchingWindowInSeconds = ptr(0)
	case src.FIFO && *w != 0:
		notSQS("MaximumBatchingWindowInSeconds", "")
	default:
		rangeCheck(p, at("MaximumBatchingWindowInSeconds"), *w, 0, 300, "")
	}
	if !src.FIFO && *m.BatchSize > 10 && *m.BatchSize <= hi && *m.MaximumBatchingWindowInSeconds < 1 {
		p.add(at("BatchSize"), "%d is above 10, which requires MaximumBatchingWindowInSeconds of at least 1", *m.BatchSize)
	}

	if m.StartingPosition != "" {
		notSQS("StartingPosition", "")
	}
	if m.StartingPositionTimestamp != nil {
		notSQS("StartingPositionTimestamp", "")
	}
	if m.ParallelizationFactor != nil {
		notSQS("ParallelizationFactor", " (SQS concurrency is set by ScalingConfig.MaximumConcurrency)")
	}
	if m.MaximumRecordAgeInSeconds != nil {
		notSQS("MaximumRecordAgeInSeconds", " (use the queue's message retention period)")
	}
	if m.MaximumRetryAttempts != nil {
		notSQS("MaximumRetryAttempts", " (use the queue's redrive policy maxReceiveCount)")
	}
	if m.BisectBatchOnFunctionError != nil {
		notSQS("BisectBatchOnFunctionError", "")
	}
	if dc := m.DestinationConfig; dc != nil && dc.OnFailure != nil {
		notSQS("DestinationConfig.OnFailure", " (use the queue's redrive policy and a dead-letter queue)")
		m.OnFailure = nil
	}
	if sc := m.ScalingConfig; sc != nil && sc.MaximumConcurrency != nil {
		rangeCheck(p, at("ScalingConfig.MaximumConcurrency"), *sc.MaximumConcurrency, 2, 1000, "")
	}
	if e.ShardDiscoveryInterval != nil {
		p.add(at("esmd.shardDiscoveryInterval"), "applies only to streams")
	}
	if v := e.VisibilityOnError; v != nil {
		switch d := v.Std(); {
		case d < 0:
			p.add(at("esmd.visibilityOnError"), "%s must not be negative", d)
		case d > maxVisibility:
			p.add(at("esmd.visibilityOnError"), "%s is above the SQS maximum 12h0m0s", d)
		case d%time.Second != 0:
			p.add(at("esmd.visibilityOnError"), "%s is not a whole number of seconds", d)
		}
	}
	if e.VisibilityHeartbeat == nil {
		e.VisibilityHeartbeat = ptr(false)
	}
	if e.PollInterval == nil {
		e.PollInterval = newDuration(0)
	}
	m.checkPollers(p, at)
}

// SQS poller defaults: Lambda's long poll and first pollers.
const (
	DefaultWaitTime       = 20 * time.Second
	DefaultInitialPollers = 5
	DefaultMinPollers     = 2
	DefaultScaleInterval  = time.Second
)

// checkPollers checks and defaults the esmd: keys of an SQS mapping's
// pollers.
func (m *Mapping) checkPollers(p *problems, at func(string) string) {
	e := &m.ESMD
	most := sqsMaxConcurrency
	if sc := m.ScalingConfig; sc != nil && sc.MaximumConcurrency != nil {
		most = *sc.MaximumConcurrency
	}
	switch d := e.WaitTime; {
	case d == nil:
		e.WaitTime = newDuration(DefaultWaitTime)
	case d.Std() < time.Second || d.Std() > 20*time.Second:
		p.add(at("esmd.waitTime"), "%s is not between 1s and 20s (the SQS long poll)", d)
	case d.Std()%time.Second != 0:
		p.add(at("esmd.waitTime"), "%s is not a whole number of seconds", d)
	}
	switch n := e.InitialPollers; {
	case n == nil:
		e.InitialPollers = ptr(min(DefaultInitialPollers, most))
	case *n < 1 || *n > most:
		p.add(at("esmd.initialPollers"), "%d is not between 1 and MaximumConcurrency (%d)", *n, most)
	}
	switch n := e.MinPollers; {
	case n == nil:
		floor := DefaultMinPollers
		if sc := m.ScalingConfig; sc != nil && sc.MaximumConcurrency != nil {
			// Lambda drops to two batches on a quiet queue, but not
			// when MaximumConcurrency is set: then it stays at five.
			floor = DefaultInitialPollers
		}
		e.MinPollers = ptr(min(floor, *e.InitialPollers))
	case *n < 1 || *n > *e.InitialPollers:
		p.add(at("esmd.minPollers"), "%d is not between 1 and initialPollers (%d)", *n, *e.InitialPollers)
	}
	switch d := e.ScaleInterval; {
	case d == nil:
		e.ScaleInterval = newDuration(DefaultScaleInterval)
	case d.Std() < 100*time.Millisecond || d.Std() > time.Minute:
		p.add(at("esmd.scaleInterval"), "%s is not between 100ms and 1m0s", d)
	}
}
