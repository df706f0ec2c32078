package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/esmd-dev/esmd/config"
	"github.com/esmd-dev/esmd/destinations"
	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/generator"
)

const benchUsage = `Usage: esmd bench [-c FILE] [--mapping NAME | --url URL] [flags]

Drives a function with generated records through the engine and reports
throughput, latency, retries, bisects, failure records, duplicates and order
violations. The function and the mapping's settings come from FILE (the
first enabled mapping, or --mapping); without FILE, --url names an HTTP
function. A generator mapping keeps its generator; any other source is
replaced by one of its shape (an SQS standard queue by a shape=sqs
generator, whose messages still run through the stream engine). Flags
override what the file says.
`

// benchOptions are esmd bench's command line.
type benchOptions struct {
	configPath, mapping, url string
	spec                     generator.Spec // overrides: zero fields keep the mapping's
	records                  int64
	faults                   faults
	sweeps                   []sweep
	json                     bool
	report                   string
	maxTime                  time.Duration
	logLevel                 string
	progress                 bool
}

// sweep is one --sweep PARAM=V1,V2,…
type sweep struct {
	param  string
	values []int
}

// sweepParams are the settings --sweep may vary.
var sweepParams = []string{"BatchSize", "ParallelizationFactor", "Shards", "MaximumBatchingWindowInSeconds"}

func parseBenchFlags(args []string, stderr io.Writer) (*benchOptions, int, bool) {
	o := &benchOptions{maxTime: 10 * time.Minute, logLevel: "error"}
	fs := flag.NewFlagSet("esmd bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage, "\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.configPath, "c", "", "configuration `FILE`")
	fs.StringVar(&o.configPath, "config", "", "configuration `FILE` (same as -c)")
	fs.StringVar(&o.mapping, "mapping", "", "the mapping `NAME` (esmd.name) to bench; default the first enabled one")
	fs.StringVar(&o.url, "url", "", "bench the HTTP function at `URL` (without -c)")
	fs.Int64Var(&o.records, "records", 0, "records to generate (default: the generator's count, else 100000)")
	fs.Float64Var(&o.spec.Rate, "rate", 0, "target `records/s` (default: the generator's, else as fast as possible)")
	fs.IntVar(&o.spec.Shards, "shards", 0, "shards (default: the generator's, else 4)")
	fs.IntVar(&o.spec.Keys, "keys", 0, "partition keys (default: the generator's, else 1000)")
	fs.IntVar(&o.spec.Size, "size", 0, "record data `bytes` (default: the generator's, else 100)")
	fs.DurationVar(&o.spec.Duration, "duration", 0, "generate for this long instead of a record count")
	fs.Int64Var(&o.spec.Seed, "seed", 0, "generator and fault seed (default: the generator's, else 1)")
	fs.Func("shape", "event `SHAPE`: kinesis, dynamodb or sqs (default: the generator's, else the source's)", func(v string) error {
		k := event.Kind(v)
		if k != event.Kinesis && k != event.DynamoDB && k != event.SQS {
			return fmt.Errorf("%q is not kinesis, dynamodb or sqs", v)
		}
		o.spec.Shape = k
		return nil
	})
	fs.Float64Var(&o.faults.Poison, "poison", 0, "`fraction` of records that are poison: a batch holding one fails")
	fs.Float64Var(&o.faults.Throttle, "throttle", 0, "`fraction` of invocations answered as throttled")
	slow := fs.String("slow", "", "`FRACTION:DELAY` of invocations delayed, e.g. 0.1:200ms")
	fs.Float64Var(&o.faults.Timeout, "timeout", 0, "`fraction` of invocations that time out after the function ran")
	fs.Float64Var(&o.faults.Duplicate, "duplicate", 0, "`fraction` of invocations delivered twice")
	fs.Func("sweep", "`PARAM=V1,V2,…` run each value (repeatable; the product of all is run): "+strings.Join(sweepParams, ", "), func(s string) error {
		sw, err := parseSweep(s)
		if err == nil {
			o.sweeps = append(o.sweeps, sw)
		}
		return err
	})
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	fs.StringVar(&o.report, "report", "", "also write a self-contained HTML report to `FILE`")
	fs.DurationVar(&o.maxTime, "max-time", o.maxTime, "stop a run that has not finished after this long")
	fs.StringVar(&o.logLevel, "log-level", o.logLevel, "engine log level on stderr: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, exitOK, false
		}
		return nil, exitUsage, false
	}
	fail := func(format string, a ...any) (*benchOptions, int, bool) {
		fmt.Fprintf(stderr, "esmd bench: "+format+"\n", a...)
		return nil, exitUsage, false
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	if (o.configPath == "") == (o.url == "") {
		return fail("give either -c FILE or --url URL")
	}
	if *slow != "" {
		frac, delay, ok := strings.Cut(*slow, ":")
		f, err1 := strconv.ParseFloat(frac, 64)
		d, err2 := time.ParseDuration(delay)
		if !ok || err1 != nil || err2 != nil || d <= 0 {
			return fail("--slow %q: expected FRACTION:DELAY, e.g. 0.1:200ms", *slow)
		}
		o.faults.Slow, o.faults.SlowDelay = f, d
	}
	for name, f := range map[string]float64{"poison": o.faults.Poison, "throttle": o.faults.Throttle, "slow": o.faults.Slow, "timeout": o.faults.Timeout, "duplicate": o.faults.Duplicate} {
		if f < 0 || f > 1 {
			return fail("--%s %g is not a fraction between 0 and 1", name, f)
		}
	}
	if o.records < 0 {
		return fail("--records %d must not be negative", o.records)
	}
	if o.maxTime <= 0 {
		return fail("--max-time must be positive")
	}
	return o, 0, true
}

func parseSweep(s string) (sweep, error) {
	param, list, ok := strings.Cut(s, "=")
	known := false
	for _, p := range sweepParams {
		known = known || p == param
	}
	if !ok || !known {
		return sweep{}, fmt.Errorf("expected PARAM=V1,V2,… with PARAM one of %s", strings.Join(sweepParams, ", "))
	}
	sw := sweep{param: param}
	for _, v := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return sweep{}, fmt.Errorf("%s: %q is not a whole number", param, v)
		}
		sw.values = append(sw.values, n)
	}
	return sw, nil
}

// benchConfig loads the configuration, or makes one for --url.
func benchConfig(o *benchOptions) (*config.Config, error) {
	if o.configPath != "" {
		return config.Load(o.configPath)
	}
	yaml := fmt.Sprintf(`functions:
  bench:
    http: {url: %q}
mappings:
  - EventSourceArn: generator://bench
    FunctionName: bench
    BisectBatchOnFunctionError: true
    MaximumRetryAttempts: 2
    esmd:
      retryBackoff: {initial: 10ms, max: 1s}
`, o.url)
	return config.Parse([]byte(yaml), "--url", func(string) (string, bool) { return "", false })
}

func cmdBench(args []string, stdout, stderr io.Writer) int {
	o, code, ok := parseBenchFlags(args, stderr)
	if !ok {
		return code
	}
	cfg, err := benchConfig(o)
	if err != nil {
		printProblems(stderr, o.configPath, err)
		return exitFailure
	}
	o.progress = isTerminal(stderr)
	log := newLogger(config.Logging{Level: o.logLevel}, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var reports []*benchReport
	for _, combo := range sweepCombos(o.sweeps) {
		rep, err := benchRun(ctx, cfg, o, combo, log, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "esmd bench: %v\n", err)
			return exitFailure
		}
		reports = append(reports, rep)
		if ctx.Err() != nil {
			break
		}
	}
	if o.json {
		if err := writeBenchJSON(stdout, reports); err != nil {
			fmt.Fprintf(stderr, "esmd bench: %v\n", err)
			return exitFailure
		}
	} else {
		writeBenchTables(stdout, reports)
	}
	if o.report != "" {
		if err := writeBenchHTML(o.report, reports); err != nil {
			fmt.Fprintf(stderr, "esmd bench: %v\n", err)
			return exitFailure
		}
	}
	for _, r := range reports {
		if !r.Complete {
			return exitFailure
		}
	}
	return exitOK
}

// combo is one combination of swept values.
type combo []struct {
	param string
	value int
}

func (c combo) String() string {
	if len(c) == 0 {
		return "run"
	}
	parts := make([]string, len(c))
	for i, p := range c {
		parts[i] = fmt.Sprintf("%s=%d", p.param, p.value)
	}
	return strings.Join(parts, " ")
}

// sweepCombos returns every combination of the swept values, the first
// sweep varying slowest; one empty combination without sweeps.
func sweepCombos(sweeps []sweep) []combo {
	out := []combo{nil}
	for _, sw := range sweeps {
		var next []combo
		for _, c := range out {
			for _, v := range sw.values {
				nc := append(combo{}, c...)
				nc = append(nc, struct {
					param string
					value int
				}{sw.param, v})
				next = append(next, nc)
			}
		}
		out = next
	}
	return out
}

// pickMapping returns the mapping to bench.
func pickMapping(cfg *config.Config, name string) (config.Settings, error) {
	for i := range cfg.Mappings {
		s := cfg.Mappings[i].Settings()
		if (name == "" && s.Enabled) || s.Name == name {
			if s.Source.FIFO {
				return s, fmt.Errorf("mapping %s: esmd bench does not generate SQS FIFO messages; bench a standard queue or a generator mapping", s.Name)
			}
			if !s.Source.IsStream() && s.Source.Kind != config.SourceSQS {
				return s, fmt.Errorf("mapping %s: esmd bench drives stream and SQS standard queue mappings only", s.Name)
			}
			return s, nil
		}
	}
	if name != "" {
		return config.Settings{}, fmt.Errorf("no mapping named %q", name)
	}
	return config.Settings{}, errors.New("no enabled mapping")
}

// benchSpec is the generator of a run: the mapping's own generator or the
// defaults, with the command line's overrides.
func benchSpec(s config.Settings, o *benchOptions) generator.Spec {
	spec := generator.Spec{Name: "bench", Count: 100000}
	if s.Source.Generator != nil {
		spec = *s.Source.Generator
		if !spec.Finite() {
			spec.Count = 100000
		}
	} else if s.Source.Kind == config.SourceDynamoDB {
		spec.Shape = event.DynamoDB
	} else if s.Source.Kind == config.SourceSQS {
		spec.Shape = event.SQS
	}
	ov := o.spec
	if ov.Shape != "" {
		spec.Shape = ov.Shape
	}
	if o.records > 0 {
		spec.Count, spec.Duration = o.records, 0
	}
	if ov.Duration > 0 {
		spec.Duration = ov.Duration
		if o.records == 0 {
			spec.Count = 0
		}
	}
	if ov.Rate > 0 {
		spec.Rate = ov.Rate
	}
	if ov.Shards > 0 {
		spec.Shards = ov.Shards
	}
	if ov.Keys > 0 {
		spec.Keys = ov.Keys
	}
	if ov.Size > 0 {
		spec.Size = ov.Size
	}
	if ov.Seed != 0 {
		spec.Seed = ov.Seed
	}
	if o.faults.Poison > 0 {
		spec.Poison = o.faults.Poison
	}
	return spec
}

// benchRun runs one combination to its end and reports it.
func benchRun(ctx context.Context, cfg *config.Config, o *benchOptions, c combo, log *slog.Logger, stderr io.Writer) (*benchReport, error) {
	s, err := pickMapping(cfg, o.mapping)
	if err != nil {
		return nil, err
	}
	spec := benchSpec(s, o)
	for _, p := range c {
		switch p.param {
		case "BatchSize":
			s.BatchSize = p.value
		case "ParallelizationFactor":
			s.ParallelizationFactor = p.value
		case "Shards":
			spec.Shards = p.value
		case "MaximumBatchingWindowInSeconds":
			s.BatchingWindow = time.Duration(p.value) * time.Second
		}
	}
	if s.BatchSize < 1 || s.BatchSize > 10000 || s.ParallelizationFactor < 1 || s.ParallelizationFactor > 10 {
		return nil, fmt.Errorf("%s: BatchSize must be 1–10000 and ParallelizationFactor 1–10", c)
	}
	if o.faults.Poison > 0 && s.MaximumRetryAttempts < 0 {
		log.Warn("--poison with MaximumRetryAttempts -1 would retry poison records forever: using 2")
		s.MaximumRetryAttempts = 2
	}
	src, err := generator.New(generator.Config{Spec: spec, InvokeIdentityARN: s.InvokeIdentityArn, Logger: log})
	if err != nil {
		return nil, err
	}
	spec = src.Spec()
	s.Source = config.Source{Kind: config.SourceGenerator, ARN: spec.URL(), Partition: "aws", Region: generator.Region,
		Account: generator.Account, Resource: spec.Name, Generator: &spec}

	inv, closer, err := newFunction(s.Function, cfg.Functions[s.Function], cfg, log)
	if err != nil {
		return nil, fmt.Errorf("mapping %s: %w", s.Name, err)
	}
	defer closer.Close()
	obs := newObserver(inv, o.faults, spec.Seed)
	sink := &failureSink{obs: obs}
	if s.OnFailure != nil {
		target := s.OnFailure.ARN
		if target == "" {
			target = s.OnFailure.URL
		}
		acfg, err := awsConfig(ctx, cfg.AWS)
		if err != nil {
			return nil, err
		}
		cl := &clients{cfg: acfg, eps: cfg.AWS.Endpoints}
		dest, err := destinations.New(ctx, target, destinations.Deps{SQS: cl.SQS(), SNS: cl.SNS(), S3: cl.S3(), Logger: log})
		if err != nil {
			return nil, fmt.Errorf("mapping %s: on-failure destination: %w", s.Name, err)
		}
		if c, ok := dest.(interface{ Close() error }); ok {
			defer c.Close()
		}
		sink.next = dest
	}
	mc := engineConfig(s, src.Kind(), cfg)
	mc.ProgressInterval = -1
	r, err := mapping.NewRunner(mc, mapping.Deps{Source: src, Invoker: obs, Destination: sink, Checkpointer: &memCheckpoints{}, Logger: log})
	if err != nil {
		return nil, err
	}

	start := time.Now()
	obs.start = start
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(runCtx) }()

	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	limit := time.NewTimer(o.maxTime)
	defer limit.Stop()
	var lastRetries, lastBisects int64
	lastLine := time.Time{}
	complete := false
	stats := r.Stats()
wait:
	for {
		select {
		case <-tick.C:
		case <-limit.C:
			break wait
		case <-ctx.Done():
			break wait
		case err := <-runErr:
			runErr <- err
			break wait
		}
		rt, bs := stats.Retries.Load(), stats.Bisects.Load()
		obs.noteStats(rt-lastRetries, bs-lastBisects)
		lastRetries, lastBisects = rt, bs
		_, failed := sink.counts()
		ok := obs.resolved()
		if o.progress && time.Since(lastLine) >= 250*time.Millisecond {
			lastLine = time.Now()
			el := time.Since(start).Seconds()
			fmt.Fprintf(stderr, "\r\033[K%s  %6.1fs  %d ok + %d failed of %d generated  %.0f records/s  retries %d  bisects %d  in flight %d",
				c, el, ok, failed, src.Generated(), float64(ok)/el, rt, bs, stats.LanesBusy.Load())
		}
		select {
		case <-src.Done():
			if ok+failed >= src.Generated() {
				complete = true
				break wait
			}
		default:
		}
	}
	if !complete {
		// The runner also stops by itself once the generator's shards are
		// all finished: the run is complete when every record resolved.
		_, failed := sink.counts()
		select {
		case <-src.Done():
			complete = obs.resolved()+failed >= src.Generated()
		default:
		}
	}
	elapsed := time.Since(start)
	if o.progress {
		fmt.Fprint(stderr, "\r\033[K")
	}
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	if err := r.Drain(dctx); err != nil {
		cancel()
	}
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	rt, bs := stats.Retries.Load(), stats.Bisects.Load()
	obs.noteStats(rt-lastRetries, bs-lastBisects)
	return newBenchReport(c.String(), spec, mc, o.faults, obs, sink, stats, elapsed, complete), nil
}

// isTerminal reports that w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
