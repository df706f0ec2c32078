package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/config"
	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/examples/handler/counter"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/generator"
)

// poisonOf regenerates a generator's records and returns its poison
// records as shardId/sequenceNumber, sorted.
func poisonOf(t *testing.T, url string) []string {
	t.Helper()
	spec, err := generator.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	src, err := generator.New(generator.Config{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	shards, _ := src.Shards(context.Background())
	for _, sh := range shards {
		r, _ := src.Open(context.Background(), sh, event.Start{Type: event.TrimHorizon})
		for {
			res, err := r.Read(context.Background())
			if errors.Is(err, mapping.ErrShardClosed) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range res.Records {
				// The generator tells poison records by their place, so
				// that payloads without JSON have them too.
				shard, n, ok := generator.ParseSeq(rec.Seq)
				if !ok {
					t.Fatalf("sequence number %s", rec.Seq)
				}
				poison := src.Poison(shard, n)
				if json := spec.Payload == generator.PayloadJSON && spec.Template == ""; json && poison != generator.ParseDataOf(rec).Poison {
					t.Fatalf("record %s: Poison disagrees with its data", rec.Seq)
				}
				if poison {
					out = append(out, sh.ID+"/"+rec.Seq)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func runBench(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"bench"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// benchJSON runs esmd bench with --json, which must succeed, and returns
// its report.
func benchJSON(t *testing.T, args ...string) benchReport {
	t.Helper()
	code, out, errOut := runBench(t, append(args, "--json")...)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report %s: %v", out, err)
	}
	return rep
}

// TestBenchCrossChecksHandler runs esmd bench with every fault against the
// example handler and checks the report against what the handler counted
// and against the generator's seeded poison records.
func TestBenchCrossChecksHandler(t *testing.T) {
	h := &counter.Handler{}
	srv := httptest.NewServer(h)
	defer srv.Close()

	rep := benchJSON(t, "--url", srv.URL, "--records", "20000", "--shards", "3", "--keys", "200", "--seed", "5",
		"--poison", "0.002", "--duplicate", "0.05", "--throttle", "0.05", "--slow", "0.05:5ms", "--timeout", "0.02")
	hs := h.Stats()
	poison := poisonOf(t, rep.Generator)
	failed := slices.Sorted(slices.Values(rep.FailedSeqs))
	checkAll(t, []check{
		{"complete", rep.Complete, true},
		{"every poison record, and nothing else, reached the destination", failed, poison},
		{"failed records", rep.FailedRecords, int64(len(poison))},
		{"records that succeeded", rep.Records, int64(20000 - len(poison))},
		{"records the handler saw", rep.Delivered, hs.Records},
		{"duplicates the handler saw", rep.Duplicates, hs.Duplicates},
		{"distinct records the handler saw", rep.Records, hs.Unique},
		{"order violations", rep.OrderViolations, int64(0)},
		{"records that succeeded twice", rep.SucceededAgain, int64(0)},
		{"throttles counted", rep.Throttles, rep.InjectedThrottle},
		{"unparsed", rep.Unparsed, int64(0)},
	})
	if len(poison) == 0 || rep.Bisects == 0 || rep.Retries == 0 || rep.InjectedDup == 0 || rep.InjectedTimeout == 0 ||
		rep.InjectedSlow == 0 || rep.InjectedThrottle == 0 || rep.Duplicates == 0 {
		t.Errorf("a fault did not happen: %d poison, report %+v", len(poison), rep)
	}
	if rep.RecordsPerSec <= 0 || rep.InvokeLatency.P50 <= 0 || rep.InvokeLatency.Max < rep.InvokeLatency.P99 ||
		rep.EndToEnd.P99 < rep.EndToEnd.P50 || rep.MaxConcurrency < 1 || rep.MaxConcurrency > 3 || len(rep.Series) == 0 {
		t.Errorf("implausible report %+v", rep)
	}
	if rep.InvokeLatency.Max < 5 {
		t.Errorf("invoke max %.2f ms: the 5ms slow invocations are not in it", rep.InvokeLatency.Max)
	}
}

// check is one named comparison of a report's value with what it must be.
type check struct {
	name      string
	got, want any
}

// checkAll reports every check whose values differ; []string values are
// compared element by element.
func checkAll(t *testing.T, checks []check) {
	t.Helper()
	for _, c := range checks {
		var equal bool
		if got, ok := c.got.([]string); ok {
			want, _ := c.want.([]string)
			equal = slices.Equal(got, want)
		} else {
			equal = c.got == c.want
		}
		if !equal {
			t.Errorf("%s: got %v, want %v", c.name, c.got, c.want)
		}
	}
}

// TestBenchConfigFileDestination benches a generator mapping of a config
// file whose on-failure destination is a file: it holds exactly the poison
// records.
func TestBenchConfigFileDestination(t *testing.T) {
	h := &counter.Handler{FailPoison: true}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir := t.TempDir()
	failures := filepath.Join(dir, "failures.jsonl")
	cfgPath := writeFile(t, dir, "esmd.yaml", `functions:
  fn:
    http: {url: "`+srv.URL+`/"}
mappings:
  - EventSourceArn: generator://cfg?shards=2&keys=30&count=5000&seed=3&poison=0.002
    FunctionName: fn
    BatchSize: 50
    ParallelizationFactor: 2
    BisectBatchOnFunctionError: true
    MaximumRetryAttempts: 1
    DestinationConfig: {OnFailure: {Destination: "file://`+failures+`"}}
    esmd: {retryBackoff: {initial: 1ms, max: 10ms}}
`)
	// The handler fails the poison records itself: no --poison.
	code, out, errOut := runBench(t, "-c", cfgPath)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"esmd bench: run (complete)", "BatchSize / ParallelizationFactor / shards", "50 / 2 / 2", "records ok / failed / generated"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	poison := poisonOf(t, "generator://cfg?shards=2&keys=30&count=5000&seed=3&poison=0.002")
	f, err := os.Open(failures)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			B struct {
				Shard string `json:"shardId"`
				Start string `json:"startSequenceNumber"`
				Size  int    `json:"batchSize"`
			} `json:"KinesisBatchInfo"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.B.Size != 1 {
			t.Fatalf("failure record %s: %v", sc.Bytes(), err)
		}
		got = append(got, rec.B.Shard+"/"+rec.B.Start)
	}
	slices.Sort(got)
	if len(poison) == 0 || !slices.Equal(got, poison) {
		t.Fatalf("failure file holds %v, want the poison records %v", got, poison)
	}
	if hs := h.Stats(); hs.Poison != int64(len(poison)) || hs.Unique != 5000 {
		t.Fatalf("handler counts %+v", hs)
	}
}

func TestBenchSweep(t *testing.T) {
	srv := httptest.NewServer(&counter.Handler{})
	defer srv.Close()
	code, out, errOut := runBench(t, "--url", srv.URL, "--records", "3000", "--sweep", "BatchSize=10,100", "--sweep", "ParallelizationFactor=1,3")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	labels := []string{"BatchSize=10 ParallelizationFactor=1", "BatchSize=10 ParallelizationFactor=3",
		"BatchSize=100 ParallelizationFactor=1", "BatchSize=100 ParallelizationFactor=3"}
	table := out[strings.Index(out, "run  records/s")+1:]
	for _, l := range labels {
		if !strings.Contains(out, "esmd bench: "+l+" (complete)") || !strings.Contains(table, l) {
			t.Errorf("no run or comparison row %q:\n%s", l, out)
		}
	}
	if !regexp.MustCompile(`(?m)^\s+run\s+records/s\s+batches/s`).MatchString(out) {
		t.Errorf("no comparison table:\n%s", out)
	}

	code, out, _ = runBench(t, "--url", srv.URL, "--records", "500", "--sweep", "BatchSize=10,50", "--json")
	var reps []benchReport
	if code != exitOK || json.Unmarshal([]byte(out), &reps) != nil || len(reps) != 2 {
		t.Fatalf("exit %d, JSON %s", code, out)
	}
	// 500 records in batches of at most 10 make at least 50 batches.
	if reps[0].BatchSize != 10 || reps[0].Batches < 50 || reps[1].BatchSize != 50 || reps[1].Batches >= reps[0].Batches {
		t.Errorf("sweep reports %+v", reps)
	}
}

func TestBenchUsage(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "give either -c FILE or --url URL"},
		{[]string{"--url", "http://x", "-c", "f"}, "give either"},
		{[]string{"--url", "http://x", "--slow", "0.1"}, "expected FRACTION:DELAY"},
		{[]string{"--url", "http://x", "--poison", "2"}, "--poison 2 is not a fraction"},
		{[]string{"--url", "http://x", "--sweep", "Colour=1"}, "PARAM one of BatchSize"},
		{[]string{"--url", "http://x", "--sweep", "BatchSize=a"}, `"a" is not a whole number`},
		{[]string{"--url", "http://x", "extra"}, `unexpected argument "extra"`},
		{[]string{"--url", "http://x", "--shape", "sns"}, `"sns" is not kinesis, dynamodb or sqs`},
		// Bad values are refused rather than replaced by defaults.
		{[]string{"--url", "http://x", "--rate", "-5"}, "--rate -5: must be a finite number of records/s, 0 or more"},
		{[]string{"--url", "http://x", "--rate", "Inf"}, "--rate +Inf: must be a finite number"},
		{[]string{"--url", "http://x", "--rate", "NaN"}, "--rate NaN: must be a finite number"},
		{[]string{"--url", "http://x", "--shards", "-3"}, "--shards -3: must be between 1 and 100000"},
		{[]string{"--url", "http://x", "--shards", "0"}, "--shards 0: must be between 1"},
		{[]string{"--url", "http://x", "--keys", "-1"}, "--keys -1: must be at least 1"},
		{[]string{"--url", "http://x", "--size", "-1"}, "--size -1: must be between 1 and 1048576 bytes"},
		{[]string{"--url", "http://x", "--duration", "-1s"}, "--duration -1s: must be positive"},
		{[]string{"--url", "http://x", "--records", "0"}, "--records 0: must be at least 1"},
		{[]string{"--url", "http://x", "--poison", "NaN"}, "--poison NaN is not a fraction"},
		{[]string{"--url", "http://x", "--log-level", "foo"}, `--log-level "foo": must be one of debug, info, warn, error`},
		{[]string{"--url", "http://x", "--sweep", "Shards=0"}, "Shards: 0 is not between 1 and 100000"},
		{[]string{"--url", "http://x", "--sweep", "ParallelizationFactor=1,11"}, "ParallelizationFactor: 11 is not between 1 and 10"},
		{[]string{"--url", "http://x", "--sweep", "MaximumBatchingWindowInSeconds=301"}, "MaximumBatchingWindowInSeconds: 301 is not between 0 and 300"},
		// --url is named as the flag, not as a line of a file.
		{[]string{"--url", "foo"}, `esmd bench: --url: "foo" is not an http:// or https:// URL`},
		{[]string{"--url", "ftp://x/"}, `esmd bench: --url: "ftp://x/" is not an http:// or https:// URL`},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := runBench(t, tc.args...)
			if code != exitUsage || !strings.Contains(errOut, tc.want) || out != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tc.want)
			}
			if strings.Contains(errOut, "(line ") {
				t.Fatalf("stderr %q names a line of a file", errOut)
			}
		})
	}
}

// TestBenchFlagOverrides checks that a flag given overrides the mapping's
// generator, also with 0 where 0 means something, and that a flag not
// given does not.
func TestBenchFlagOverrides(t *testing.T) {
	rated := &generator.Spec{Name: "g", Rate: 500, Shards: 3, Keys: 7, Size: 50, Count: 900, Seed: 4}
	cases := []struct {
		name string
		args []string
		want generator.Spec
	}{
		{"no flags keep the generator", nil, *rated},
		{"--rate 0 is as fast as possible", []string{"--rate", "0"},
			generator.Spec{Name: "g", Rate: 0, Shards: 3, Keys: 7, Size: 50, Count: 900, Seed: 4}},
		{"every flag", []string{"--rate", "20", "--shards", "1", "--keys", "2", "--size", "9", "--records", "30", "--seed", "5"},
			generator.Spec{Name: "g", Rate: 20, Shards: 1, Keys: 2, Size: 9, Count: 30, Seed: 5}},
		{"--duration replaces the count", []string{"--duration", "2s"},
			generator.Spec{Name: "g", Rate: 500, Shards: 3, Keys: 7, Size: 50, Duration: 2 * time.Second, Seed: 4}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			o, code, ok := parseBenchFlags(append([]string{"--url", "http://x/"}, tc.args...), &stderr)
			if !ok {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			got := benchSpec(config.Settings{Source: config.Source{Kind: config.SourceGenerator, Generator: rated}}, o)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Fatalf("spec (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBenchChecksBeforeRunning checks that a bad sweep value or an
// unwritable report is refused before the first run: the function is
// never called.
func TestBenchChecksBeforeRunning(t *testing.T) {
	h := &counter.Handler{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir := t.TempDir()
	file := writeFile(t, dir, "file", "")
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"a bad value late in a sweep", []string{"--sweep", "BatchSize=100,20000"}, "BatchSize: 20000 is not between 1 and 10000"},
		{"a bad value in a second sweep", []string{"--sweep", "BatchSize=10,20", "--sweep", "Shards=2,0"}, "Shards: 0 is not between 1"},
		{"a report under a file", []string{"--report", filepath.Join(file, "report.html")}, "--report: cannot make the directory"},
		{"a report that is a directory", []string{"--report", dir}, "is a directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runBench(t, append([]string{"--url", srv.URL, "--records", "200"}, tc.args...)...)
			if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", code, out, errOut, tc.want)
			}
			if hs := h.Stats(); hs.Batches != 0 {
				t.Fatalf("the function was called %d times", hs.Batches)
			}
		})
	}
	// A report in a directory yet to be made is written.
	report := filepath.Join(dir, "new", "sub", "report.html")
	if code, out, errOut := runBench(t, "--url", srv.URL, "--records", "200", "--report", report); code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if _, err := os.Stat(report); err != nil {
		t.Fatal(err)
	}
}

// chromium returns the headless browser's path; it skips the test when
// there is none, except under CI=true, where it fails.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed: run test/install-browser.sh")
	}
	t.Skip("chromium is not installed (test/install-browser.sh installs it)")
	return ""
}

// TestBenchHTMLReport writes the HTML report of a run with faults and opens
// it in headless Chromium: the DOM it renders holds the four charts, with
// drawn lines and histogram bars, and the page loads nothing from outside.
func TestBenchHTMLReport(t *testing.T) {
	browser := chromium(t)
	srv := httptest.NewServer(&counter.Handler{})
	defer srv.Close()
	report := filepath.Join(t.TempDir(), "report.html")
	code, out, errOut := runBench(t, "--url", srv.URL, "--records", "20000", "--rate", "10000", "--poison", "0.001", "--report", report)
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	for _, banned := range []string{"<script", "http://", "https://", "<link"} {
		if strings.Contains(strings.ReplaceAll(string(page), `xmlns="http://www.w3.org/2000/svg"`, ""), banned) {
			t.Errorf("the report is not self-contained: it holds %q", banned)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--dump-dom", "file://"+report)
	var dom, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &dom, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	d := dom.String()
	if n := strings.Count(d, `<svg class="chart"`); n != 4 {
		t.Errorf("%d charts in the rendered DOM, want 4", n)
	}
	for _, title := range []string{"Throughput (records/s)", "Invoke latency histogram", "End-to-end latency histogram", "Retries, bisects and failure records per second"} {
		if !strings.Contains(d, title) {
			t.Errorf("no chart %q", title)
		}
	}
	paths := regexp.MustCompile(`<path class="s\d" d="M[\d.]+,[\d.]+ L`).FindAllString(d, -1)
	if len(paths) < 4 {
		t.Errorf("%d drawn lines, want the throughput line and 3 retry/bisect/failure lines", len(paths))
	}
	if n := strings.Count(d, `<rect class="bar"`); n < 4 {
		t.Errorf("%d histogram bars", n)
	}

	// A screenshot shows the charts are painted, not just in the DOM.
	shot := filepath.Join(t.TempDir(), "report.png")
	cmd = exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), "--window-size=1280,2000", "--screenshot="+shot, "file://"+report)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium screenshot: %v\n%s", err, out)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Fatalf("screenshot %v %v", st, err)
	}
	if dir := os.Getenv("ESMD_REPORT_SHOT"); dir != "" {
		_ = os.WriteFile(dir, mustRead(t, shot), 0o644)
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBenchReplacesStreamSource benches a DynamoDB stream mapping: its
// source becomes a DynamoDB-shaped generator, and the handler parses every
// record of the events it gets.
func TestBenchReplacesStreamSource(t *testing.T) {
	h := &counter.Handler{}
	srv := httptest.NewServer(h)
	defer srv.Close()
	cfgPath := writeFile(t, t.TempDir(), "esmd.yaml", `functions:
  fn:
    http: {url: "`+srv.URL+`/"}
mappings:
  - EventSourceArn: arn:aws:dynamodb:us-east-1:123456789012:table/items/stream/2024-01-01T00:00:00.000
    FunctionName: fn
    StartingPosition: LATEST
    BatchSize: 25
`)
	rep := benchJSON(t, "-c", cfgPath, "--records", "2000", "--shards", "2")
	hs := h.Stats()
	if !strings.Contains(rep.Generator, "shape=dynamodb") || rep.Records != 2000 || hs.Unique != 2000 || hs.Unparsed != 0 ||
		rep.BatchSize != 25 || rep.Batches < 80 {
		t.Fatalf("report %+v, handler %+v", rep, hs)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}} {
		got := h.quantile(c.q)
		// A bucket is 1/16 of an octave wide: about 4.4%.
		if got < c.want || float64(got) > float64(c.want)*1.045 {
			t.Errorf("q%.2f = %s, want %s within one bucket above", c.q, got, c.want)
		}
	}
	if h.max != time.Second || h.quantile(1) != time.Second {
		t.Errorf("max %s, q1 %s", h.max, h.quantile(1))
	}
	var empty hist
	if empty.quantile(0.5) != 0 {
		t.Error("an empty histogram has a median")
	}
}

// TestBenchSQSShape benches SQS-shaped generators against the example
// handler, which reads the records from the messages' bodies: the records
// and duplicates the report counts are those the handler counted, and the
// poison records are exactly the failed ones. The generator is asked for
// with --shape, named by a config file's generator URL, or replaces an SQS
// standard queue mapping's source.
func TestBenchSQSShape(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string // the mapping; "" benches --url
		args  []string
		count int64
		batch int
	}{
		{"--shape sqs", "", []string{"--shape", "sqs", "--records", "6000", "--shards", "2", "--keys", "100", "--seed", "8",
			"--poison", "0.002", "--duplicate", "0.05", "--throttle", "0.02"}, 6000, 100},
		{"generator URL", `  - EventSourceArn: generator://jobs?shape=sqs&shards=3&keys=50&count=3000&seed=2
    FunctionName: fn
    BatchSize: 40
    BisectBatchOnFunctionError: true
    MaximumRetryAttempts: 1
    esmd: {retryBackoff: {initial: 1ms, max: 10ms}}
`, []string{"--duplicate", "0.05", "--poison", "0.003"}, 3000, 40},
		{"SQS queue mapping", `  - EventSourceArn: arn:aws:sqs:us-east-1:123456789012:jobs
    FunctionName: fn
    BatchSize: 10
    esmd: {retryBackoff: {initial: 1ms, max: 10ms}}
`, []string{"--records", "2000", "--duplicate", "0.1"}, 2000, 10},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := &counter.Handler{}
			srv := httptest.NewServer(h)
			defer srv.Close()
			args := []string{"--url", srv.URL}
			if tc.yaml != "" {
				args = []string{"-c", writeFile(t, t.TempDir(), "esmd.yaml",
					"functions:\n  fn:\n    http: {url: \""+srv.URL+"/\"}\nmappings:\n"+tc.yaml)}
			}
			rep := benchJSON(t, append(args, tc.args...)...)
			hs := h.Stats()
			poison := poisonOf(t, rep.Generator)
			failed := slices.Sorted(slices.Values(rep.FailedSeqs))
			checkAll(t, []check{
				{"shape", strings.Contains(rep.Generator, "shape=sqs"), true},
				{"complete", rep.Complete, true},
				{"batch size", rep.BatchSize, tc.batch},
				{"every poison record, and nothing else, failed", failed, poison},
				{"records that succeeded", rep.Records, tc.count - int64(len(poison))},
				{"records the handler saw", rep.Delivered, hs.Records},
				{"duplicates the handler saw", rep.Duplicates, hs.Duplicates},
				// esmd bench fails a batch with a poison record without
				// invoking the handler.
				{"distinct records the handler saw", rep.Records, hs.Unique},
				{"order violations", rep.OrderViolations, int64(0)},
				{"records that succeeded twice", rep.SucceededAgain, int64(0)},
				{"unparsed by esmd", rep.Unparsed, int64(0)},
				{"unparsed by the handler", hs.Unparsed, int64(0)},
			})
			if rep.InjectedDup == 0 || rep.Duplicates == 0 {
				t.Errorf("no duplicates were injected: report %+v", rep)
			}
			if slices.Contains(tc.args, "--poison") && (len(poison) == 0 || rep.FailedRecords != int64(len(poison))) {
				t.Errorf("%d poison records, %d failed", len(poison), rep.FailedRecords)
			}
		})
	}
}

func TestBenchRefusesFIFO(t *testing.T) {
	cfgPath := writeFile(t, t.TempDir(), "esmd.yaml", `functions:
  fn:
    http: {url: "http://127.0.0.1:1/"}
mappings:
  - EventSourceArn: arn:aws:sqs:us-east-1:123456789012:jobs.fifo
    FunctionName: fn
`)
	code, _, errOut := runBench(t, "-c", cfgPath, "--records", "10")
	if code != exitFailure || !strings.Contains(errOut, "does not generate SQS FIFO messages") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
