package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
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
	spec                     generator.Spec  // overrides, of the flags in set
	set                      map[string]bool // the flags given, by name
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

// sweepParam is a setting --sweep may vary, with the values it may take.
type sweepParam struct {
	name     string
	min, max int
}

// sweepParams are the settings --sweep may vary.
var sweepParams = []sweepParam{
	{"BatchSize", 1, 10000},
	{"ParallelizationFactor", 1, 10},
	{"Shards", 1, generator.MaxShards},
	{"MaximumBatchingWindowInSeconds", 0, 300},
}

func sweepNames() string {
	names := make([]string, len(sweepParams))
	for i, p := range sweepParams {
		names[i] = p.name
	}
	return strings.Join(names, ", ")
}

// logLevels are the values of --log-level.
var logLevels = []string{"debug", "info", "warn", "error"}

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
	fs.Float64Var(&o.spec.Rate, "rate", 0, "target `records/s`; 0: as fast as possible (default: the generator's, else 0)")
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
	fs.Func("sweep", "`PARAM=V1,V2,…` run each value (repeatable; the product of all is run): "+sweepNames(), func(s string) error {
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
	// A flag given as 0 overrides the mapping's value; one not given
	// does not.
	o.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
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
	for _, fr := range []struct {
		name string
		f    float64
	}{{"poison", o.faults.Poison}, {"throttle", o.faults.Throttle}, {"slow", o.faults.Slow}, {"timeout", o.faults.Timeout}, {"duplicate", o.faults.Duplicate}} {
		if !(fr.f >= 0 && fr.f <= 1) { // NaN too
			return fail("--%s %g is not a fraction between 0 and 1", fr.name, fr.f)
		}
	}
	sp := o.spec
	switch {
	case o.set["records"] && o.records < 1:
		return fail("--records %d: must be at least 1", o.records)
	case o.set["rate"] && !(sp.Rate >= 0 && !math.IsInf(sp.Rate, 1)):
		return fail("--rate %g: must be a finite number of records/s, 0 or more (0: as fast as possible)", sp.Rate)
	case o.set["shards"] && (sp.Shards < 1 || sp.Shards > generator.MaxShards):
		return fail("--shards %d: must be between 1 and %d", sp.Shards, generator.MaxShards)
	case o.set["keys"] && sp.Keys < 1:
		return fail("--keys %d: must be at least 1", sp.Keys)
	case o.set["size"] && (sp.Size < 1 || sp.Size > 1<<20):
		return fail("--size %d: must be between 1 and %d bytes", sp.Size, 1<<20)
	case o.set["duration"] && sp.Duration <= 0:
		return fail("--duration %s: must be positive", sp.Duration)
	case o.maxTime <= 0:
		return fail("--max-time %s: must be positive", o.maxTime)
	case !slices.Contains(logLevels, o.logLevel):
		return fail("--log-level %q: must be one of %s", o.logLevel, strings.Join(logLevels, ", "))
	}
	if o.report != "" {
		if err := checkReportPath(o.report); err != nil {
			return fail("--report: %v", err)
		}
	}
	return o, 0, true
}

// checkReportPath checks, before any run, that the HTML report can be
// written to path: its directory exists (it is made if need be) and takes
// a new file, and path is not a directory nor a file that cannot be written.
func checkReportPath(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cannot make the directory of %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil {
		if st.IsDir() {
			return fmt.Errorf("%s is a directory", path)
		}
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("%s is not writable: %w", path, err)
		}
		return f.Close()
	}
	f, err := os.CreateTemp(dir, ".esmd-bench-*")
	if err != nil {
		return fmt.Errorf("cannot write to the directory of %s: %w", path, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func parseSweep(s string) (sweep, error) {
	param, list, ok := strings.Cut(s, "=")
	i := slices.IndexFunc(sweepParams, func(p sweepParam) bool { return p.name == param })
	if !ok || i < 0 {
		return sweep{}, fmt.Errorf("expected PARAM=V1,V2,… with PARAM one of %s", sweepNames())
	}
	p := sweepParams[i]
	sw := sweep{param: param}
	for _, v := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return sweep{}, fmt.Errorf("%s: %q is not a whole number", param, v)
		}
		if n < p.min || n > p.max {
			return sweep{}, fmt.Errorf("%s: %d is not between %d and %d", param, n, p.min, p.max)
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
		if o.url != "" {
			// The configuration is made from --url: name the flag, not
			// a file and line the user never wrote.
			var errs config.Errors
			if errors.As(err, &errs) {
				for _, e := range errs {
					fmt.Fprintf(stderr, "esmd bench: --url: %s\n", e.Msg)
				}
			} else {
				fmt.Fprintf(stderr, "esmd bench: --url: %v\n", err)
			}
			return exitUsage
		}
		printProblems(stderr, o.configPath, err)
		return exitFailure
	}
	s, err := pickMapping(cfg, o.mapping)
	if err != nil {
		fmt.Fprintf(stderr, "esmd bench: %v\n", err)
		return exitFailure
	}
	// Every run is checked before the first starts: a bad value late in
	// a sweep must not cost the runs before it.
	plans, err := planBench(s, o)
	if err != nil {
		fmt.Fprintf(stderr, "esmd bench: %v\n", err)
		return exitUsage
	}
	o.progress = isTerminal(stderr)
	log := newLogger(config.Logging{Level: o.logLevel}, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var reports []*benchReport
	var runErr error
	for _, p := range plans {
		rep, err := benchRun(ctx, cfg, o, p, log, stderr)
		if err != nil {
			runErr = fmt.Errorf("%s: %w", p.label, err)
			break
		}
		reports = append(reports, rep)
		if ctx.Err() != nil {
			break
		}
	}
	// The runs that finished are reported, also when a later one failed.
	code = exitOK
	if len(reports) > 0 {
		if o.json {
			if err := writeBenchJSON(stdout, reports); err != nil {
				fmt.Fprintf(stderr, "esmd bench: %v\n", err)
				code = exitFailure
			}
		} else {
			writeBenchTables(stdout, reports)
		}
		if o.report != "" {
			if err := writeBenchHTML(o.report, reports); err != nil {
				fmt.Fprintf(stderr, "esmd bench: %v\n", err)
				code = exitFailure
			}
		}
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "esmd bench: %v\n", runErr)
		return exitFailure
	}
	for _, r := range reports {
		if !r.Complete {
			code = exitFailure
		}
	}
	return code
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
	if o.set["records"] {
		spec.Count, spec.Duration = o.records, 0
	}
	if o.set["duration"] {
		spec.Duration = ov.Duration
		if !o.set["records"] {
			spec.Count = 0
		}
	}
	if o.set["rate"] {
		spec.Rate = ov.Rate // 0: as fast as possible
	}
	if o.set["shards"] {
		spec.Shards = ov.Shards
	}
	if o.set["keys"] {
		spec.Keys = ov.Keys
	}
	if o.set["size"] {
		spec.Size = ov.Size
	}
	if o.set["seed"] {
		spec.Seed = ov.Seed
	}
	if o.faults.Poison > 0 {
		spec.Poison = o.faults.Poison
	}
	return spec
}

// benchPlan is one run of esmd bench: the mapping's settings and its
// generator, with one combination of the swept values.
type benchPlan struct {
	label string
	s     config.Settings
	spec  generator.Spec // defaults applied
}

// planBench returns every run of a bench of mapping s, each checked. The
// swept values need no check here: parseSweep kept them in range, and the
// configuration the mapping's own values.
func planBench(s config.Settings, o *benchOptions) ([]benchPlan, error) {
	var plans []benchPlan
	for _, c := range sweepCombos(o.sweeps) {
		p := benchPlan{label: c.String(), s: s, spec: benchSpec(s, o)}
		for _, v := range c {
			switch v.param {
			case "BatchSize":
				p.s.BatchSize = v.value
			case "ParallelizationFactor":
				p.s.ParallelizationFactor = v.value
			case "Shards":
				p.spec.Shards = v.value
			case "MaximumBatchingWindowInSeconds":
				p.s.BatchingWindow = time.Duration(v.value) * time.Second
			}
		}
		spec, err := p.spec.WithDefaults()
		if err != nil {
			return nil, fmt.Errorf("%s: generator: %w", p.label, err)
		}
		p.spec = spec
		plans = append(plans, p)
	}
	return plans, nil
}

// benchRun runs one plan to its end and reports it.
func benchRun(ctx context.Context, cfg *config.Config, o *benchOptions, p benchPlan, log *slog.Logger, stderr io.Writer) (*benchReport, error) {
	s, spec := p.s, p.spec
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
	mc := engineConfig(s, src.Kind(), cfg)
	mc.ProgressInterval = -1
	obs := newObserver(inv, o.faults, spec.Seed)
	obs.partial = mc.ReportBatchItemFailures
	obs.poison = src.Poison
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
	// done reports that the generator has ended and every record it
	// generated succeeded or went to a failure record.
	done := func() bool {
		select {
		case <-src.Done():
			_, failed := sink.counts()
			return obs.resolved()+failed >= src.Generated()
		default:
			return false
		}
	}
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
		if o.progress && time.Since(lastLine) >= 250*time.Millisecond {
			lastLine = time.Now()
			_, failed := sink.counts()
			ok := obs.resolved()
			el := time.Since(start).Seconds()
			fmt.Fprintf(stderr, "\r\033[K%s  %6.1fs  %d ok + %d failed of %d generated  %.0f records/s  retries %d  bisects %d  in flight %d",
				p.label, el, ok, failed, src.Generated(), float64(ok)/el, rt, bs, stats.LanesBusy.Load())
		}
		if done() {
			complete = true
			break wait
		}
	}
	// The runner also stops by itself once the generator's shards are all
	// finished: the run is complete when every record resolved.
	complete = complete || done()
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
	return newBenchReport(p.label, spec, mc, o.faults, obs, sink, stats, elapsed, complete), nil
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
