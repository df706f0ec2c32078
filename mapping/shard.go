package mapping

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// worker runs one shard: a reader goroutine (the caller of run), its lanes,
// and a checkpoint saver. It is started and stopped by the supervisor.
type worker struct {
	r     *Runner
	shard event.Shard
	start event.Start
	log   *slog.Logger
	tr    *tracker
	lanes []*lane

	stats shardStats
	saveC chan struct{} // wakes the saver; capacity 1
	// halted is closed when a lane stops before its input is done.
	halted      chan struct{}
	haltOnce    sync.Once
	mu          sync.Mutex // guards saved and saveFailing
	saved       string     // last sequence number saved
	saveFailing bool

	// backlog holds, per lane, the shares the reader has not handed over
	// yet (see handOut); backlogged counts their records.
	backlog    [][]share
	backlogged int
	// recSize is the mean size of the shard's records' event JSON, a
	// moving average the reader keeps when there are several lanes.
	recSize atomic.Int64
}

// exit says why a worker stopped.
type exit struct {
	shard  string
	closed bool // the shard was read to its end and finished
	err    error
}

func newWorker(r *Runner, s event.Shard, start event.Start) *worker {
	w := &worker{
		r:      r,
		shard:  s,
		start:  start,
		log:    r.log.With("shard", s.ID),
		tr:     newTracker(r.cfg.ParallelizationFactor),
		saveC:  make(chan struct{}, 1),
		halted: make(chan struct{}),
	}
	for i := 0; i < r.cfg.ParallelizationFactor; i++ {
		w.lanes = append(w.lanes, newLane(w, i))
	}
	return w
}

// halt records that a lane stopped before its input was done.
func (w *worker) halt() { w.haltOnce.Do(func() { close(w.halted) }) }

// resolve records that lane finished its first n pending records, and
// reports whether that moved the shard's checkpoint when it is saved after
// every batch (checkpoints.interval 0): then the lane calls batchDone.
func (w *worker) resolve(lane, n int) bool {
	if n == 0 {
		return false
	}
	_, moved := w.tr.resolve(lane, n)
	return moved && w.r.cfg.CheckpointInterval <= 0
}

// wakeSaver asks the saver to save the checkpoint.
func (w *worker) wakeSaver() {
	select {
	case w.saveC <- struct{}{}:
	default:
	}
}

// batchDone saves the checkpoint after a lane's batch, or a done prefix of
// it, moved it. With one lane, the lane saves it itself, as the lead limit
// would make it wait for the save anyway, and a hand-over to the saver and
// back would cost two goroutine wake-ups a batch. With more, the saver
// saves it while the lanes go on. A failed save is left to the saver,
// which retries with backoff.
func (w *worker) batchDone(ctx context.Context) {
	if len(w.lanes) == 1 && ctx.Err() == nil && w.save(ctx, false) {
		return
	}
	w.wakeSaver()
}

// How far past the checkpoint lanes may run while the lane holding it back
// retries a failed batch (see waitLead): records, and bytes of their event
// JSON, which the reader holds meanwhile.
const (
	maxLead      = 10_000
	maxLeadBytes = 16 << 20
)

// leadLimit is how far past the checkpoint any lane may run: BatchSize x
// ParallelizationFactor records (see waitLead).
func (w *worker) leadLimit() int64 {
	return int64(w.r.cfg.BatchSize * w.r.cfg.ParallelizationFactor)
}

// leadPastFailure is how many records past the checkpoint the lanes may run
// while the lane holding it back retries a failed batch: maxLead, or fewer
// when that many records of the shard's mean size pass maxLeadBytes, but
// never fewer than limit, the lead any lane has.
func (w *worker) leadPastFailure(limit int64) int64 {
	n := int64(maxLead)
	if size := w.recSize.Load(); size > 0 {
		n = min(n, maxLeadBytes/size)
	}
	return max(n, limit)
}

// noteSizes updates the mean record size with a poll of n records of
// bytes in all. Only the reader calls it.
func (w *worker) noteSizes(bytes int64, n int) {
	mean := bytes / int64(n)
	if old := w.recSize.Load(); old > 0 {
		mean = (7*old + mean) / 8
	}
	w.recSize.Store(max(mean, 1))
}

// waitLead holds a lane back while it is too far ahead of the shard's
// checkpoint. Lanes that run ahead of a slower one would be re-delivered
// after a crash, since the checkpoint only covers the contiguous prefix; the
// limit of BatchSize x ParallelizationFactor records bounds those duplicates
// without slowing lanes that keep pace.
//
// A failing batch stops only its partition keys, though (Lambda's rule for
// ParallelizationFactor > 1): while the lane holding the checkpoint back
// retries a failed batch, the other lanes go on, up to leadPastFailure
// records past the checkpoint (10,000, or 16 MiB of records). That bound is
// esmd's: it keeps the memory of what the checkpoint has not passed, and the
// records a crash would deliver again, finite while a poison record is
// retried for up to a day.
//
// A lane held back by a checkpoint that is resolved but not yet saved saves
// it itself, once, rather than wait for the saver. It returns false on hard
// stop, and when another lane of the shard stopped early.
func (w *worker) waitLead(ctx context.Context, lane int) bool {
	limit := w.leadLimit()
	fromSaved := w.r.cfg.CheckpointInterval <= 0
	tried := false
	for {
		ok, moved := w.tr.lead(lane, limit, w.leadPastFailure(limit), fromSaved)
		if ok {
			return true
		}
		if fromSaved && !tried && w.tr.unsaved() {
			tried = true
			if w.save(ctx, false) {
				continue
			}
			w.wakeSaver()
		}
		select {
		case <-moved:
		case <-w.halted:
			// A lane stopped early (a failure during a drain): the
			// checkpoint will not move past it, so do not wait.
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// run reads the shard until it ends, the mapping drains, or ctx is
// cancelled, then waits for the lanes and saves the final checkpoint.
func (w *worker) run(ctx context.Context) exit {
	if w.start.Type == event.Latest {
		w.pinLatest(ctx)
	}
	attrs := []any{"start", w.start.Type}
	if w.start.Seq != "" {
		attrs = append(attrs, "start_seq", w.start.Seq)
	}
	if !w.start.Timestamp.IsZero() {
		attrs = append(attrs, "start_time", w.start.Timestamp)
	}
	w.log.Info("shard started", attrs...)
	var lanes sync.WaitGroup
	for _, l := range w.lanes {
		lanes.Add(1)
		go func() {
			defer lanes.Done()
			l.run(ctx)
		}()
	}
	saverCtx, stopSaver := context.WithCancel(ctx)
	saverDone := make(chan struct{})
	go func() {
		defer close(saverDone)
		w.saver(saverCtx)
	}()

	closed, err := w.read(ctx)
	// What the reader routed reaches its lanes, unless they stop first.
	w.handOut(ctx, true)
	for _, l := range w.lanes {
		close(l.in)
	}
	lanes.Wait()
	stopSaver()
	<-saverDone

	finished := closed && w.tr.pending() == 0
	w.saveFinal(finished)
	switch {
	case finished:
		w.log.Info("shard finished")
	case err != nil:
		w.log.Error("shard stopped", "err", err)
	default:
		w.log.Info("shard stopped")
	}
	return exit{shard: w.shard.ID, closed: finished, err: err}
}

// read polls the shard and routes records to lanes. It returns closed when
// the shard ended.
func (w *worker) read(ctx context.Context) (closed bool, err error) {
	r := w.r
	// Reads stop on drain as well as on hard stop.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-r.drainC:
			cancel()
		case <-rctx.Done():
		}
	}()

	start := w.start
	var reader ShardReader
	defer func() {
		if reader != nil {
			_ = reader.Close()
		}
	}()
	bo := newBackoff(r.cfg.RetryInitial, r.cfg.RetryMax)
	failing := false
	retry := func(what string, err error) bool {
		if !failing {
			w.log.Warn("reading shard failed; retrying", "op", what, "err", err)
			failing = true
			w.stats.failing.Store(true)
		}
		return sleepDrain(rctx, nil, bo.NextBackOff())
	}

	P := r.cfg.ParallelizationFactor
	var laneOf []int
	var seqs []string
	var perLane [][]event.Record
	if P > 1 {
		perLane = make([][]event.Record, P)
	}
	for rctx.Err() == nil {
		if reader == nil {
			rd, err := r.deps.Source.Open(rctx, w.shard, start)
			if err != nil {
				if rctx.Err() != nil {
					break
				}
				if errors.Is(err, ErrSourceGone) {
					return false, err
				}
				if !retry("open", err) {
					break
				}
				continue
			}
			reader = rd
			if f, ok := rd.(failer); ok {
				w.stats.reader.Store(&f)
			}
		}
		// Shares held back for a lane that was retrying go to it now
		// that it may have recovered, before the reader waits on a poll.
		if w.backlogged > 0 && !w.handOut(ctx, false) {
			break
		}
		res, err := reader.Read(rctx)
		if err != nil {
			if errors.Is(err, ErrShardClosed) {
				return true, nil
			}
			if rctx.Err() != nil {
				break
			}
			if errors.Is(err, ErrSourceGone) {
				return false, err
			}
			// Reopen after the last record routed, so nothing is lost
			// or repeated.
			_ = reader.Close()
			reader = nil
			if !retry("read", err) {
				break
			}
			continue
		}
		if failing {
			w.log.Info("reading shard recovered")
			failing = false
			w.stats.failing.Store(false)
		}
		bo.Reset()
		r.stats.Polls.Add(1)
		n := len(res.Records)
		if n == 0 {
			if res.Release != nil {
				res.Release() // nothing to hold
			}
			continue
		}
		r.stats.PolledEvents.Add(int64(n))
		// A copy: the record's string may keep its whole poll alive.
		start = event.Start{Type: event.AfterSequence, Seq: strings.Clone(res.Records[n-1].Seq)}

		seqs = seqs[:0]
		laneOf = laneOf[:0]
		for i := range res.Records {
			seqs = append(seqs, res.Records[i].Seq)
			laneOf = append(laneOf, laneFor(res.Records[i].Key, P))
		}
		w.tr.add(seqs, laneOf)
		clear(seqs) // the tracker has them: let the poll go when it is done
		// Records registered in the tracker must reach their lanes even
		// when a drain begins now, or the checkpoint could never pass
		// them: the sends stop only on a hard stop.
		if P == 1 {
			if !w.send(ctx, 0, share{recs: res.Records, ref: newReadRef(res.Release, 1)}) {
				break
			}
			continue
		}
		var bytes int64
		for i := range res.Records {
			perLane[laneOf[i]] = append(perLane[laneOf[i]], res.Records[i])
			bytes += int64(res.Records[i].Size())
		}
		w.noteSizes(bytes, n)
		sent := w.sendAll(ctx, perLane, res.Release)
		clear(perLane) // the lanes own the shares now
		if !sent {
			break
		}
	}
	return false, nil
}

// send hands records to a lane, waiting while the lane is busy: this is the
// backpressure that slows reading down to the function's pace.
func (w *worker) send(ctx context.Context, lane int, s share) bool {
	select {
	case w.lanes[lane].in <- s:
		return true
	case <-w.halted:
		return false
	case <-ctx.Done():
		return false
	}
}

// sendAll hands each lane its share of a poll (see handOut). The lanes
// hold copies of the records, which point at the poll's JSON bytes:
// release, when set, is called once every lane that got a share is done.
func (w *worker) sendAll(ctx context.Context, perLane [][]event.Record, release func()) bool {
	shares := 0
	for _, recs := range perLane {
		if len(recs) > 0 {
			shares++
		}
	}
	ref := newReadRef(release, shares)
	if w.backlog == nil {
		w.backlog = make([][]share, len(perLane))
	}
	for i, recs := range perLane {
		if len(recs) > 0 {
			w.backlog[i] = append(w.backlog[i], share{recs: recs, ref: ref})
			w.backlogged += len(recs)
		}
	}
	return w.handOut(ctx, false)
}

// handOut sends the lanes the shares waiting for them, in order per lane,
// in whatever order the lanes come for them: a fixed order could deadlock,
// as a lane held back by waitLead would block the send to the lane that
// holds the checkpoint back. It returns once every lane has taken its
// shares, except lanes retrying a failed batch (which come back for more
// only once they are done): their shares may wait in the backlog, while it
// holds fewer than leadPastFailure records, so that the reader goes on for the
// other lanes. A failing batch stops only its partition keys. With all, it
// returns only once every share is taken. It returns false on hard stop,
// or when a lane stopped early.
func (w *worker) handOut(ctx context.Context, all bool) bool {
	var cases []reflect.SelectCase
	var laneOf []int
	most := int(w.leadPastFailure(w.leadLimit()))
	for {
		// Taken before the lanes are looked at: a lane that starts
		// failing after its look closes it.
		changed := w.tr.changed()
		wait := false
		for i := range w.backlog {
			for len(w.backlog[i]) > 0 && w.trySend(i) {
			}
			if len(w.backlog[i]) > 0 && (all || w.backlogged >= most || !w.tr.isFailing(i)) {
				wait = true
			}
		}
		if !wait {
			return true
		}
		cases, laneOf = cases[:0], laneOf[:0]
		for i := range w.backlog {
			if len(w.backlog[i]) > 0 {
				cases = append(cases, reflect.SelectCase{Dir: reflect.SelectSend, Chan: reflect.ValueOf(w.lanes[i].in), Send: reflect.ValueOf(w.backlog[i][0])})
				laneOf = append(laneOf, i)
			}
		}
		// changed is closed when a lane starts failing (or the checkpoint
		// moves): the reader may then go on without that lane.
		cases = append(cases,
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(changed)},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.halted)},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())})
		chosen, _, _ := reflect.Select(cases)
		switch {
		case chosen < len(laneOf):
			w.sent(laneOf[chosen])
		case chosen == len(laneOf):
		default:
			return false
		}
	}
}

// trySend hands lane i its first waiting share if the lane is ready for it.
func (w *worker) trySend(i int) bool {
	select {
	case w.lanes[i].in <- w.backlog[i][0]:
		w.sent(i)
		return true
	default:
		return false
	}
}

// sent drops lane i's first waiting share, which the lane took.
func (w *worker) sent(i int) {
	w.backlogged -= len(w.backlog[i][0].recs)
	w.backlog[i][0] = share{}
	w.backlog[i] = w.backlog[i][1:]
	if len(w.backlog[i]) == 0 {
		w.backlog[i] = nil // let the emptied array go
	}
}

// laneFor maps a partition key to a lane with FNV-1a, so that one key always
// goes to the same lane.
func laneFor(key string, lanes int) int {
	if lanes <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(lanes))
}

// saver saves the shard's checkpoint after each completed batch, or every
// CheckpointInterval, until ctx ends. A failed save is retried with backoff;
// meanwhile lanes stop once they lead the last saved position by the lead
// limit, so esmd stops advancing rather than deliver what it cannot record.
func (w *worker) saver(ctx context.Context) {
	var tick <-chan time.Time
	if iv := w.r.cfg.CheckpointInterval; iv > 0 {
		t := time.NewTicker(iv)
		defer t.Stop()
		tick = t.C
	}
	bo := newBackoff(w.r.cfg.RetryInitial, w.r.cfg.RetryMax)
	var retry *time.Timer
	var retryC <-chan time.Time
	defer func() {
		if retry != nil {
			retry.Stop()
		}
	}()
	for {
		select {
		case <-w.saveC:
		case <-tick:
		case <-retryC:
			retryC = nil
		case <-ctx.Done():
			return
		}
		if w.save(ctx, false) {
			bo.Reset()
			continue
		}
		if ctx.Err() == nil && retryC == nil {
			retry = time.NewTimer(bo.NextBackOff())
			retryC = retry.C
		}
	}
}

// save stores the tracker's checkpoint if it moved since the last save. It
// reports false when the save failed.
func (w *worker) save(ctx context.Context, finished bool) bool {
	// Lanes and the saver save concurrently: the checkpoint is read under
	// the lock, so that a save never stores an older one after a newer.
	w.mu.Lock()
	defer w.mu.Unlock()
	idx, seq := w.tr.checkpoint()
	if !finished && (seq == "" || seq == w.saved) {
		return true
	}
	p := event.Position{Seq: seq, Finished: finished}
	if err := w.r.deps.Checkpointer.Save(ctx, w.r.cfg.Name, w.shard.ID, p); err != nil {
		if ctx.Err() != nil && !finished {
			// The saver was stopped mid-save; the final save follows.
			return false
		}
		w.r.stats.CheckpointErrors.Add(1)
		if !w.saveFailing {
			w.saveFailing = true
			w.log.Error("saving checkpoint failed; the shard's position stays at the last saved one and the shard stops advancing until saving works again",
				"seq", seq, "saved_seq", w.saved, "err", err)
		}
		return false
	}
	if w.saveFailing {
		w.saveFailing = false
		w.log.Info("saving checkpoint recovered", "seq", seq)
	}
	w.r.stats.CheckpointSaves.Add(1)
	w.saved = seq
	w.tr.markSaved(idx)
	return true
}

// pinLatest saves, before a shard without a checkpoint is first opened at
// LATEST, the time it starts from (see LatestSince) as its checkpoint.
// Until one of its records is done, a restart then reads on from that time
// instead of taking a new LATEST, which would skip every record put while
// esmd was down, and also those it had read but not yet finished.
func (w *worker) pinLatest(ctx context.Context) {
	p := event.Position{Since: LatestSince()}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.r.deps.Checkpointer.Save(ctx, w.r.cfg.Name, w.shard.ID, p); err != nil {
		w.r.stats.CheckpointErrors.Add(1)
		w.log.Error("saving where LATEST began failed; until a record of the shard is done, a restart starts at a new LATEST and skips what was put meanwhile",
			"since", p.Since, "err", err)
		return
	}
	w.r.stats.CheckpointSaves.Add(1)
}

// LatestSince is the time a LATEST start is pinned to when it is taken now,
// for a restart (pinLatest) or a reopened reader (the Kinesis source) to
// read on from with AT_TIMESTAMP: a second before now, in whole
// milliseconds. The second covers a clock a little ahead of the server's,
// which refuses an AT_TIMESTAMP in its future; records put up to that long
// before the start may then be read too: more than LATEST gives, never
// fewer.
func LatestSince() time.Time {
	return time.Now().Add(-time.Second).Truncate(time.Millisecond).UTC()
}

// saveFinal writes the last checkpoint with its own short deadline, so that
// it is written even after a hard stop.
func (w *worker) saveFinal(finished bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.save(ctx, finished)
}
