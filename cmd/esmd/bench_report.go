package main

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/generator"
)

// latency is a latency summary in milliseconds.
type latency struct {
	P50 float64 `json:"p50_ms"`
	P90 float64 `json:"p90_ms"`
	P99 float64 `json:"p99_ms"`
	Max float64 `json:"max_ms"`
}

func summarize(h *hist) latency {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000 }
	return latency{P50: ms(h.quantile(0.5)), P90: ms(h.quantile(0.9)), P99: ms(h.quantile(0.99)), Max: ms(h.max)}
}

// bucket is one bar of a latency histogram.
type bucket struct {
	UpToMS float64 `json:"up_to_ms"`
	Count  int64   `json:"count"`
}

// benchReport is the outcome of one run of esmd bench.
type benchReport struct {
	Label string `json:"label"`
	// Complete is false when the run was stopped (--max-time or a signal)
	// before every generated record was resolved.
	Complete bool `json:"complete"`

	Generator             string  `json:"generator"`
	BatchSize             int     `json:"batch_size"`
	ParallelizationFactor int     `json:"parallelization_factor"`
	Shards                int     `json:"shards"`
	Faults                faults  `json:"faults"`
	Seconds               float64 `json:"seconds"`

	Generated     int64   `json:"generated"`
	Records       int64   `json:"records"` // distinct records that succeeded
	RecordsPerSec float64 `json:"records_per_sec"`
	Batches       int64   `json:"batches"` // invocations whose every record succeeded
	BatchesPerSec float64 `json:"batches_per_sec"`
	Invocations   int64   `json:"invocations"`
	// PartialBatches counts invocations whose partial batch response
	// (ReportBatchItemFailures) failed some records: those from the first
	// one named on, ReportedFailed in all, which the engine retried.
	PartialBatches int64 `json:"partial_batches"`
	ReportedFailed int64 `json:"records_reported_failed"`

	InvokeLatency latency `json:"invoke_latency"`
	EndToEnd      latency `json:"end_to_end_latency"`

	Retries         int64 `json:"retries"`
	Bisects         int64 `json:"bisects"`
	FunctionErrors  int64 `json:"function_errors"`
	Throttles       int64 `json:"throttles"`
	InvokeErrors    int64 `json:"invoke_errors"`
	FailureRecords  int64 `json:"failure_records"`
	FailedRecords   int64 `json:"failed_records"`
	Delivered       int64 `json:"delivered"` // records handed to the function, repeats included
	Duplicates      int64 `json:"duplicates"`
	SucceededAgain  int64 `json:"succeeded_again"`
	OrderViolations int64 `json:"order_violations"`
	// Unparsed counts the distinct records delivered whose data is not the
	// generator's JSON (payload=random, or a template without "k" and
	// "n"): they count as records, but per-key order and end-to-end
	// latency are not checked for them.
	Unparsed         int64 `json:"unparsed"`
	MaxConcurrency   int64 `json:"max_concurrency"`
	InjectedPoison   int64 `json:"injected_poison_batches"`
	InjectedThrottle int64 `json:"injected_throttles"`
	InjectedSlow     int64 `json:"injected_slow"`
	InjectedTimeout  int64 `json:"injected_timeouts"`
	InjectedDup      int64 `json:"injected_duplicates"`

	// FailedSeqs names each failure record's first record as
	// shardId/sequenceNumber.
	FailedSeqs []string `json:"failed_records_at,omitempty"`
	// Series holds counts per whole second from the start (the last second
	// may be partial); Rates, drawn in the HTML report, holds rates over
	// buckets fine enough for short runs.
	Series           []second `json:"per_second"`
	Rates            rates    `json:"rates"`
	InvokeHistogram  []bucket `json:"invoke_histogram"`
	EndToEndHistgram []bucket `json:"end_to_end_histogram"`
}

func histBuckets(h *hist) []bucket {
	var out []bucket
	lo, hi := -1, -1
	for i, n := range h.counts {
		if n > 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
		}
	}
	if lo < 0 {
		return out
	}
	for i := lo; i <= hi; i++ {
		out = append(out, bucket{UpToMS: float64(histUpper(i)) / float64(time.Millisecond), Count: h.counts[i]})
	}
	return out
}

func newBenchReport(label string, spec generator.Spec, mc mapping.Config, f faults, o *observer, sink *failureSink, st *mapping.Stats, elapsed time.Duration, complete bool) *benchReport {
	o.mu.Lock()
	defer o.mu.Unlock()
	sink.mu.Lock()
	defer sink.mu.Unlock()
	secs := elapsed.Seconds()
	r := &benchReport{
		Label: label, Complete: complete, Generator: spec.URL(),
		BatchSize: mc.BatchSize, ParallelizationFactor: mc.ParallelizationFactor, Shards: spec.Shards, Faults: f,
		Seconds: math.Round(secs*1000) / 1000,
		Records: o.okRecords, Batches: o.okBatches, Invocations: o.invocations,
		PartialBatches: o.partialBatches, ReportedFailed: o.reportedFailed,
		InvokeLatency: summarize(&o.invokeLat), EndToEnd: summarize(&o.e2eLat),
		Retries: st.Retries.Load(), Bisects: st.Bisects.Load(),
		FunctionErrors: o.functionErrors, Throttles: o.throttles, InvokeErrors: o.invokeErrors,
		FailureRecords: sink.count, FailedRecords: sink.records,
		Delivered: o.deliveredRecords, Duplicates: o.duplicates, SucceededAgain: o.okAgain,
		OrderViolations: o.orderViolations, Unparsed: o.unparsed, MaxConcurrency: o.maxInflight.Load(),
		InjectedPoison: o.injected.poison, InjectedThrottle: o.injected.throttle, InjectedSlow: o.injected.slow,
		InjectedTimeout: o.injected.timeout, InjectedDup: o.injected.duplicate,
		FailedSeqs:       append([]string(nil), sink.seqs...),
		Series:           append([]second(nil), o.series...),
		Rates:            o.timeline.rates(elapsed),
		InvokeHistogram:  histBuckets(&o.invokeLat),
		EndToEndHistgram: histBuckets(&o.e2eLat),
	}
	r.Generated = st.PolledEvents.Load()
	if secs > 0 {
		r.RecordsPerSec = math.Round(float64(r.Records) / secs)
		r.BatchesPerSec = math.Round(float64(r.Batches)/secs*10) / 10
	}
	return r
}

func writeBenchJSON(w io.Writer, reports []*benchReport) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if len(reports) == 1 {
		return enc.Encode(reports[0])
	}
	return enc.Encode(reports)
}

func writeBenchTables(w io.Writer, reports []*benchReport) {
	for _, r := range reports {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		status := "complete"
		if !r.Complete {
			status = "INCOMPLETE: stopped before every record was resolved"
		}
		fmt.Fprintf(tw, "esmd bench: %s (%s)\n", r.Label, status)
		fmt.Fprintf(tw, "  generator\t%s\n", r.Generator)
		fmt.Fprintf(tw, "  BatchSize / ParallelizationFactor / shards\t%d / %d / %d\n", r.BatchSize, r.ParallelizationFactor, r.Shards)
		fmt.Fprintf(tw, "  duration\t%.2f s\n", r.Seconds)
		fmt.Fprintf(tw, "  records ok / failed / generated\t%d / %d / %d\n", r.Records, r.FailedRecords, r.Generated)
		fmt.Fprintf(tw, "  throughput\t%.0f records/s, %.1f batches/s\n", r.RecordsPerSec, r.BatchesPerSec)
		fmt.Fprintf(tw, "  invoke latency p50 / p90 / p99 / max\t%s\n", fmtLat(r.InvokeLatency))
		if len(r.EndToEndHistgram) > 0 {
			fmt.Fprintf(tw, "  end-to-end latency p50 / p90 / p99 / max\t%s\n", fmtLat(r.EndToEnd))
		} else {
			fmt.Fprintf(tw, "  end-to-end latency\tnot measured: no record's data holds its generation time\n")
		}
		fmt.Fprintf(tw, "  invocations / successful batches\t%d / %d\n", r.Invocations, r.Batches)
		if r.PartialBatches > 0 {
			fmt.Fprintf(tw, "  partial batch responses (records failed)\t%d (%d)\n", r.PartialBatches, r.ReportedFailed)
		}
		fmt.Fprintf(tw, "  retries / bisects\t%d / %d\n", r.Retries, r.Bisects)
		fmt.Fprintf(tw, "  function errors / throttles / invoke errors\t%d / %d / %d\n", r.FunctionErrors, r.Throttles, r.InvokeErrors)
		fmt.Fprintf(tw, "  failure records (records)\t%d (%d)\n", r.FailureRecords, r.FailedRecords)
		fmt.Fprintf(tw, "  delivered / duplicates / order violations\t%d / %d / %d\n", r.Delivered, r.Duplicates, r.OrderViolations)
		if r.Unparsed > 0 {
			fmt.Fprintf(tw, "  not checked\t%s\n", uncheckedNote(r.Unparsed))
		}
		fmt.Fprintf(tw, "  max concurrency\t%d\n", r.MaxConcurrency)
		if f := r.Faults; f != (faults{}) {
			fmt.Fprintf(tw, "  injected: poison batches / throttles / slow / timeouts / duplicates\t%d / %d / %d / %d / %d\n",
				r.InjectedPoison, r.InjectedThrottle, r.InjectedSlow, r.InjectedTimeout, r.InjectedDup)
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	if len(reports) > 1 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "run\trecords/s\tbatches/s\tinvoke p50 ms\tinvoke p99 ms\te2e p99 ms\tretries\tbisects\tfailed\tduplicates\tconcurrency\t")
		for _, r := range reports {
			fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.2f\t%.2f\t%.1f\t%d\t%d\t%d\t%d\t%d\t\n", r.Label, r.RecordsPerSec, r.BatchesPerSec,
				r.InvokeLatency.P50, r.InvokeLatency.P99, r.EndToEnd.P99, r.Retries, r.Bisects, r.FailedRecords, r.Duplicates, r.MaxConcurrency)
		}
		tw.Flush()
	}
}

// uncheckedNote says what could not be checked of records whose data
// esmd bench could not parse.
func uncheckedNote(n int64) string {
	return fmt.Sprintf(`per-key order and end-to-end latency of %d records whose data has no "k" and "n" (payload=random or a template); they are counted, and checked for duplicates, by their sequence numbers`, n)
}

func fmtLat(l latency) string {
	return fmt.Sprintf("%.2f / %.2f / %.2f / %.2f ms", l.P50, l.P90, l.P99, l.Max)
}

// svgChart is one chart of the HTML report, drawn on the server side.
type svgChart struct {
	Title  string
	W, H   int
	Paths  []svgPath
	Bars   []svgBar
	XLabel string
	YMax   string
	XMax   string
}

type svgPath struct {
	Class, D, Label string
}

type svgBar struct {
	X, Y, W, H float64
	Title      string
}

const chartW, chartH, pad = 640, 220, 40

// rateChart draws one line per series of rates over the run's time: a
// point at the middle of each bucket (the last ends with the run), or a
// level line across the run when there is one bucket.
func rateChart(title string, names []string, r rates, series [][]float64) svgChart {
	c := svgChart{Title: title, W: chartW, H: chartH, XLabel: "seconds"}
	ymax := 1.0
	for _, s := range series {
		for _, v := range s {
			ymax = max(ymax, v)
		}
	}
	c.YMax = fmt.Sprintf("%.0f", ymax)
	c.XMax = strconv.FormatFloat(r.Seconds, 'g', 3, 64)
	total := max(r.Seconds, 1e-9)
	x := func(t float64) float64 { return pad + min(t/total, 1)*float64(chartW-2*pad) }
	y := func(v float64) float64 { return float64(chartH-pad) - v/ymax*float64(chartH-2*pad) }
	w := r.BucketMS / 1000
	for k, s := range series {
		var b strings.Builder
		if len(s) == 1 {
			fmt.Fprintf(&b, "M%.1f,%.1f L%.1f,%.1f", x(0), y(s[0]), x(total), y(s[0]))
		} else {
			for i, v := range s {
				from, to := float64(i)*w, float64(i+1)*w
				if i == len(s)-1 {
					to = total
				}
				cmd := "L"
				if i == 0 {
					cmd = "M"
				}
				fmt.Fprintf(&b, "%s%.1f,%.1f ", cmd, x((from+to)/2), y(v))
			}
		}
		c.Paths = append(c.Paths, svgPath{Class: fmt.Sprintf("s%d", k), D: strings.TrimSpace(b.String()), Label: names[k]})
	}
	return c
}

// barChart draws a histogram's buckets.
func barChart(title string, bs []bucket) svgChart {
	c := svgChart{Title: title, W: chartW, H: chartH, XLabel: "milliseconds (log scale)"}
	var ymax int64 = 1
	for _, b := range bs {
		ymax = max(ymax, b.Count)
	}
	c.YMax = fmt.Sprintf("%d", ymax)
	if len(bs) > 0 {
		c.XMax = fmt.Sprintf("%.3g", bs[len(bs)-1].UpToMS)
	}
	w := float64(chartW-2*pad) / float64(max(len(bs), 1))
	for i, b := range bs {
		h := float64(b.Count) / float64(ymax) * float64(chartH-2*pad)
		c.Bars = append(c.Bars, svgBar{X: pad + float64(i)*w, Y: float64(chartH-pad) - h, W: max(w-1, 1), H: h,
			Title: fmt.Sprintf("≤ %.3g ms: %d", b.UpToMS, b.Count)})
	}
	return c
}

var htmlReport = template.Must(template.New("report").Funcs(template.FuncMap{
	"add": func(a, b int) int { return a + b },
	"mul": func(a, b int) int { return a * b },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>esmd bench report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
svg{background:#fafafa;border:1px solid #ddd;margin:0.5em 1em 0.5em 0}
.s0{stroke:#1f77b4}.s1{stroke:#d62728}.s2{stroke:#2ca02c}.s3{stroke:#9467bd}
path{fill:none;stroke-width:1.5}rect.bar{fill:#1f77b4}text{font-size:11px;fill:#444}
</style></head><body>
<h1>esmd bench report</h1>
{{if gt (len .Reports) 1}}<h2>Comparison</h2>
<table><tr><th>run</th><th>records/s</th><th>batches/s</th><th>invoke p50 ms</th><th>invoke p99 ms</th><th>e2e p99 ms</th><th>retries</th><th>bisects</th><th>failed</th><th>duplicates</th></tr>
{{range .Reports}}<tr><td>{{.Label}}</td><td>{{printf "%.0f" .RecordsPerSec}}</td><td>{{printf "%.1f" .BatchesPerSec}}</td><td>{{.InvokeLatency.P50}}</td><td>{{.InvokeLatency.P99}}</td><td>{{.EndToEnd.P99}}</td><td>{{.Retries}}</td><td>{{.Bisects}}</td><td>{{.FailedRecords}}</td><td>{{.Duplicates}}</td></tr>
{{end}}</table>{{end}}
{{range .Runs}}<section class="run">
<h2>{{.R.Label}}{{if not .R.Complete}} (incomplete){{end}}</h2>
<p><code>{{.R.Generator}}</code>, BatchSize {{.R.BatchSize}}, ParallelizationFactor {{.R.ParallelizationFactor}}, {{.R.Seconds}} s</p>
<table>
<tr><td>throughput</td><td>{{printf "%.0f" .R.RecordsPerSec}} records/s, {{printf "%.1f" .R.BatchesPerSec}} batches/s</td></tr>
<tr><td>records ok / failed</td><td>{{.R.Records}} / {{.R.FailedRecords}}</td></tr>
<tr><td>invoke latency p50 / p90 / p99 / max (ms)</td><td>{{.R.InvokeLatency.P50}} / {{.R.InvokeLatency.P90}} / {{.R.InvokeLatency.P99}} / {{.R.InvokeLatency.Max}}</td></tr>
<tr><td>end-to-end latency p50 / p90 / p99 / max (ms)</td><td>{{.R.EndToEnd.P50}} / {{.R.EndToEnd.P90}} / {{.R.EndToEnd.P99}} / {{.R.EndToEnd.Max}}</td></tr>
<tr><td>retries / bisects / failure records</td><td>{{.R.Retries}} / {{.R.Bisects}} / {{.R.FailureRecords}}</td></tr>
<tr><td>duplicates / order violations / max concurrency</td><td>{{.R.Duplicates}} / {{.R.OrderViolations}} / {{.R.MaxConcurrency}}</td></tr>
{{if .R.PartialBatches}}<tr><td>partial batch responses (records failed)</td><td>{{.R.PartialBatches}} ({{.R.ReportedFailed}})</td></tr>
{{end}}{{if .Unchecked}}<tr><td>not checked</td><td>{{.Unchecked}}</td></tr>
{{end}}</table>
<p>Rates over {{.R.Rates.BucketMS}} ms buckets; the last bucket ends with the run.</p>
{{range .Charts}}<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}">
<title>{{.Title}}</title>
<text x="40" y="16" font-weight="bold">{{.Title}}</text>
<line x1="40" y1="180" x2="600" y2="180" stroke="#888"/><line x1="40" y1="40" x2="40" y2="180" stroke="#888"/>
<text x="4" y="44">{{.YMax}}</text><text x="4" y="184">0</text><text x="580" y="198">{{.XMax}}</text><text x="280" y="212">{{.XLabel}}</text>
{{range $i, $p := .Paths}}<path class="{{$p.Class}}" d="{{$p.D}}"><title>{{$p.Label}}</title></path><text class="{{$p.Class}}" x="{{printf "%d" (add 360 (mul $i 80))}}" y="16">— {{$p.Label}}</text>
{{end}}{{range .Bars}}<rect class="bar" x="{{printf "%.1f" .X}}" y="{{printf "%.1f" .Y}}" width="{{printf "%.1f" .W}}" height="{{printf "%.1f" .H}}"><title>{{.Title}}</title></rect>
{{end}}</svg>
{{end}}</section>
{{end}}</body></html>
`))

type htmlRun struct {
	R         *benchReport
	Charts    []svgChart
	Unchecked string
}

// writeBenchHTML writes a self-contained page: inline SVG charts, no
// scripts and no external resources.
func writeBenchHTML(path string, reports []*benchReport) error {
	var runs []htmlRun
	for _, r := range reports {
		rt := r.Rates
		runs = append(runs, htmlRun{R: r, Charts: []svgChart{
			rateChart("Throughput (records/s)", []string{"records"}, rt, [][]float64{rt.Records}),
			barChart("Invoke latency histogram", r.InvokeHistogram),
			barChart("End-to-end latency histogram", r.EndToEndHistgram),
			rateChart("Retries, bisects and failure records per second", []string{"retries", "bisects", "failures"}, rt, [][]float64{rt.Retries, rt.Bisects, rt.Failures}),
		}})
		if r.Unparsed > 0 {
			runs[len(runs)-1].Unchecked = uncheckedNote(r.Unparsed)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := htmlReport.Execute(f, map[string]any{"Reports": reports, "Runs": runs}); err != nil {
		f.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
