package admin

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/esmd-dev/esmd/mapping"
)

// Histograms records invocation durations and batch sizes. The engine feeds
// them through mapping.Observer, one call per invocation (not per record);
// the server exposes them on /metrics when Config.Histograms is set.
type Histograms struct {
	duration *prometheus.HistogramVec
	records  *prometheus.HistogramVec
	bytes    *prometheus.HistogramVec
}

// NewHistograms returns empty histograms.
func NewHistograms() *Histograms {
	labels := []string{"mapping", "uuid", "source", "outcome"}
	return &Histograms{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "esmd_invocation_duration_seconds",
			Help:    "Time from sending an event to the function's answer, by outcome (AWS: Duration, as the caller sees it).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16), // 1 ms .. 33 s
		}, labels),
		records: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "esmd_batch_size_records",
			Help:    "Records per invocation.",
			Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000},
		}, labels[:3]),
		bytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "esmd_batch_size_bytes",
			Help:    "Event payload bytes per invocation (Lambda's limit is 6 MB).",
			Buckets: prometheus.ExponentialBuckets(1024, 4, 8), // 1 KiB .. 16 MiB
		}, labels[:3]),
	}
}

// collectors returns what the server registers.
func (h *Histograms) collectors() []prometheus.Collector {
	return []prometheus.Collector{h.duration, h.records, h.bytes}
}

// For returns the observer of one mapping.
func (h *Histograms) For(name, uuid, source string) mapping.Observer {
	return &observer{h: h, labels: []string{name, uuid, source}}
}

type observer struct {
	h      *Histograms
	labels []string
}

func (o *observer) Invoked(shard string, d time.Duration, records, bytes int, outcome mapping.Outcome) {
	o.h.duration.WithLabelValues(o.labels[0], o.labels[1], o.labels[2], string(outcome)).Observe(d.Seconds())
	o.h.records.WithLabelValues(o.labels...).Observe(float64(records))
	o.h.bytes.WithLabelValues(o.labels...).Observe(float64(bytes))
}
