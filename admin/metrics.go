package admin

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Labels of every mapping series; shard series add "shard", invocation
// counts add "outcome".
var mappingLabels = []string{"mapping", "uuid", "source"}

func desc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string(nil), mappingLabels...), extra...), nil)
}

// The metric families. docs/METRICS.md maps each to its AWS name.
var (
	descPolled      = desc("esmd_polled_events_total", "Records read from the event source (AWS PolledEventCount).")
	descPolls       = desc("esmd_polls_total", "Reads of the event source, empty ones included.")
	descFiltered    = desc("esmd_filtered_out_events_total", "Records dropped by FilterCriteria (AWS FilteredOutEventCount); always 0: esmd does not filter yet.")
	descInvoked     = desc("esmd_invoked_events_total", "Records sent to the function; retried records count again (AWS InvokedEventCount).")
	descFailed      = desc("esmd_failed_invoke_events_total", "Records of invocations that failed or reported batch item failures (AWS FailedInvokeEventCount).")
	descDropped     = desc("esmd_dropped_events_total", "Records given up over MaximumRecordAgeInSeconds or MaximumRetryAttempts with no on-failure destination (AWS DroppedEventCount).")
	descDelivered   = desc("esmd_on_failure_destination_delivered_events_total", "Given-up records whose failure record reached the on-failure destination (AWS OnFailureDestinationDeliveredEventCount).")
	descDestFail    = desc("esmd_destination_delivery_failures_total", "Failed attempts to deliver a failure record to the on-failure destination (AWS DestinationDeliveryFailures).")
	descDeleted     = desc("esmd_deleted_events_total", "SQS messages deleted after they were processed (AWS DeletedEventCount).")
	descDeleteFail  = desc("esmd_sqs_delete_failures_total", "SQS messages whose deletion kept failing; they are received again.")
	descReturned    = desc("esmd_sqs_returned_events_total", "SQS messages left to reappear: of failed batches or reported as failed.")
	descInvocations = desc("esmd_invocations_total", "Invocations by outcome: success (partial batch failures included), function_error, timeout, throttle, invoke_error.", "outcome")
	descRetries     = desc("esmd_retries_total", "Invocations repeated after a failure.")
	descBisects     = desc("esmd_bisects_total", "Batches split in two after a function error (BisectBatchOnFunctionError).")
	descCPSaves     = desc("esmd_checkpoint_saves_total", "Checkpoint positions saved.")
	descCPErrors    = desc("esmd_checkpoint_errors_total", "Checkpoint saves that failed.")
	descShardsDone  = desc("esmd_shards_finished_total", "Shards read to their end by this process.")
	descLanesBusy   = desc("esmd_lanes_busy", "Invocations in flight now: busy lanes of a stream mapping, batches in flight of an SQS mapping.")
	descPollers     = desc("esmd_sqs_pollers", "SQS pollers running now (the mapping's concurrency, at most ScalingConfig.MaximumConcurrency).")
	descPollersPeak = desc("esmd_sqs_pollers_peak", "The highest number of SQS pollers since the mapping started.")
	descShards      = desc("esmd_shards_running", "Shards being read now.")
	descIterAge     = desc("esmd_iterator_age_milliseconds", "Age of the last record of the last invoked batch, per running shard (AWS IteratorAge); for SQS, the age of the oldest message of the last batch, with an empty shard.", "shard")
	descLag         = desc("esmd_checkpoint_lag_records", "Records of a running shard read but not yet checkpointed.", "shard")
	descHealthy     = desc("esmd_mapping_healthy", "1 when the mapping's source answers (shards listed and read without errors), else 0.")
	descEnabled     = desc("esmd_mapping_enabled", "1 when the mapping is enabled in the configuration, else 0.")
)

var allDescs = []*prometheus.Desc{
	descPolled, descPolls, descFiltered, descInvoked, descFailed, descDropped, descDelivered, descDestFail,
	descDeleted, descDeleteFail, descReturned, descInvocations, descRetries, descBisects, descCPSaves,
	descCPErrors, descShardsDone, descLanesBusy, descPollers, descPollersPeak, descShards, descIterAge,
	descLag, descHealthy, descEnabled,
}

// collector reads every mapping's counters and status at scrape time.
type collector struct {
	src Source

	// success remembers the last success count reported per mapping UUID,
	// so that the derived counter never goes down (see successes).
	mu      sync.Mutex
	success map[string]successMark
}

type successMark struct {
	invocations int64
	success     float64
}

func newCollector(src Source) *collector {
	return &collector{src: src, success: map[string]successMark{}}
}

// Describe sends every family's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect sends one sample per family and mapping, and one per running
// shard for the shard families. It is called by concurrent scrapes.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ms := c.src.Mappings()
	seen := make(map[string]bool, len(ms))
	for i := range ms {
		m := &ms[i]
		seen[m.UUID] = true
		c.collectMapping(ch, m)
	}
	c.mu.Lock()
	for id := range c.success {
		if !seen[id] {
			delete(c.success, id)
		}
	}
	c.mu.Unlock()
}

func (c *collector) collectMapping(ch chan<- prometheus.Metric, m *Mapping) {
	lv := []string{m.Name, m.UUID, m.SourceKind}
	gauge := func(d *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append(lv, extra...)...)
	}
	counter := func(d *prometheus.Desc, v int64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append(lv, extra...)...)
	}
	gauge(descEnabled, b2f(m.Enabled))
	s := m.Stats
	if s == nil && m.SQS != nil {
		s = &m.SQS.Stats
	}
	if s == nil {
		return
	}
	st := m.status()
	gauge(descHealthy, b2f(st.Healthy))

	// Read the outcome counters before the totals they are subtracted
	// from, so that an invocation finishing meanwhile is not counted as a
	// success and then taken back.
	fnErr, timeouts, throttles, invErr := s.FunctionErrors.Load(), s.Timeouts.Load(), s.Throttles.Load(), s.InvokeErrors.Load()
	busy := s.LanesBusy.Load()
	counter(descInvocations, fnErr-timeouts, "function_error")
	counter(descInvocations, timeouts, "timeout")
	counter(descInvocations, throttles, "throttle")
	counter(descInvocations, invErr, "invoke_error")
	ch <- prometheus.MustNewConstMetric(descInvocations, prometheus.CounterValue,
		c.successes(m.UUID, s.Invocations.Load(), busy+fnErr+throttles+invErr), append(lv, "success")...)

	counter(descPolled, s.PolledEvents.Load())
	counter(descPolls, s.Polls.Load())
	counter(descFiltered, 0)
	counter(descInvoked, s.InvokedEvents.Load())
	counter(descFailed, s.FailedInvokeEvents.Load())
	counter(descRetries, s.Retries.Load())
	gauge(descLanesBusy, float64(busy))

	if q := m.SQS; q != nil {
		counter(descDeleted, q.DeletedEvents.Load())
		counter(descDeleteFail, q.DeleteFailures.Load())
		counter(descReturned, q.ReturnedEvents.Load())
		gauge(descPollers, float64(q.Concurrency.Load()))
		gauge(descPollersPeak, float64(q.PeakConcurrency.Load()))
		gauge(descIterAge, float64(s.IteratorAgeMillis.Load()), "")
		return
	}
	counter(descDropped, s.DroppedEvents.Load())
	counter(descDelivered, s.DestinationDeliveredEvents.Load())
	counter(descDestFail, s.DestinationFailures.Load())
	counter(descBisects, s.Bisects.Load())
	counter(descCPSaves, s.CheckpointSaves.Load())
	counter(descCPErrors, s.CheckpointErrors.Load())
	counter(descShardsDone, int64(st.ShardsFinished))
	gauge(descShards, float64(len(st.Shards)))
	for _, sh := range st.Shards {
		gauge(descIterAge, float64(sh.IteratorAgeMillis), sh.ID)
		gauge(descLag, float64(sh.Pending), sh.ID)
	}
}

// successes keeps the derived success count of a mapping monotonic. The
// engine counts an invocation before it knows its outcome and its failure
// kinds after, so the difference can briefly count a failing invocation as
// a success; reporting the highest value seen keeps the counter from going
// down, at the cost of a transient overcount bounded by the invocations in
// flight. A runner replaced under the same UUID starts from zero again,
// which shows as fewer invocations than before: the counter resets too.
func (c *collector) successes(uuid string, invocations, others int64) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	last, ok := c.success[uuid]
	f := max(float64(invocations-others), 0)
	if ok && invocations >= last.invocations {
		f = max(f, last.success)
	}
	c.success[uuid] = successMark{invocations, f}
	return f
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
