package mapping

import (
	"strings"
	"sync"
)

// tracker finds the checkpoint of one shard: the end of the contiguous prefix
// of resolved records, when records are resolved out of order across lanes.
//
// Each record read is given the next index in shard order and queued on its
// lane. A lane resolves only a prefix of its own queue (its records are
// processed in order), so the shard is done up to just below the smallest
// index still queued on any lane. The reader adds a whole poll at once and a
// lane resolves a whole batch at once, so the lock is taken per poll and per
// batch, never per record.
type tracker struct {
	mu    sync.Mutex
	next  int64      // index of the next record added
	base  int64      // index of seqs[off]
	off   int        // entries of seqs already checkpointed
	seqs  []string   // sequence numbers of indexes base..next-1, from off
	lanes []idxQueue // pending indexes per lane
	// failing marks the lanes waiting to retry a failed batch, until they
	// resolve records again.
	failing []bool
	done    int64 // every index <= done is resolved; -1 for none
	// doneSeq is the sequence number of index done, or "" when nothing
	// new was resolved since the tracker started.
	doneSeq string
	// saved is the highest index whose position was saved; -1 for none.
	saved int64
	// moved is closed, and replaced, each time done or saved advances.
	moved chan struct{}
}

type idxQueue struct {
	buf  []int64
	head int
}

func (q *idxQueue) len() int { return len(q.buf) - q.head }

func (q *idxQueue) push(i int64) { q.buf = append(q.buf, i) }

func (q *idxQueue) front() int64 { return q.buf[q.head] }

func (q *idxQueue) pop(n int) {
	q.head += n
	if q.head == len(q.buf) {
		q.buf, q.head = q.buf[:0], 0
	} else if q.head > 1024 && q.head*2 > len(q.buf) {
		k := copy(q.buf, q.buf[q.head:])
		q.buf, q.head = q.buf[:k], 0
	}
}

func newTracker(lanes int) *tracker {
	return &tracker{lanes: make([]idxQueue, lanes), failing: make([]bool, lanes), done: -1, saved: -1, moved: make(chan struct{})}
}

// add registers records in shard order; lane[i] is the lane of the record
// with sequence number seqs[i].
func (t *tracker) add(seqs []string, lane []int) {
	t.mu.Lock()
	for i, s := range seqs {
		t.seqs = append(t.seqs, s)
		t.lanes[lane[i]].push(t.next)
		t.next++
	}
	t.mu.Unlock()
}

// resolve marks the first n pending records of lane as done, and returns the
// shard's checkpoint and whether it moved.
func (t *tracker) resolve(lane, n int) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lanes[lane].pop(n)
	t.failing[lane] = false
	low, _ := t.lowest()
	if low-1 <= t.done {
		return t.doneSeq, false
	}
	t.done = low - 1
	close(t.moved)
	t.moved = make(chan struct{})
	i := t.off + int(t.done-t.base)
	// A copy: a record's sequence number may keep its whole poll alive,
	// and this one is kept until the next batch is done.
	t.doneSeq = strings.Clone(t.seqs[i])
	// Forget the sequence numbers at or below the checkpoint, compacting
	// once the forgotten part dominates.
	clear(t.seqs[t.off : i+1])
	t.off, t.base = i+1, t.done+1
	if t.off == len(t.seqs) {
		t.seqs, t.off = t.seqs[:0], 0
	} else if t.off > 1024 && t.off*2 > len(t.seqs) {
		k := copy(t.seqs, t.seqs[t.off:])
		t.seqs, t.off = t.seqs[:k], 0
	}
	return t.doneSeq, true
}

// lead reports whether lane's next record is less than limit records past
// the checkpoint (the saved one when fromSaved), or less than most while
// the lane holding the checkpoint back retries a failed batch; when it is
// not, the channel is closed once the checkpoint moves or a lane starts
// failing. Measured from the resolved checkpoint, the lane that holds it
// back always has lead 0, so waiting cannot deadlock; measured from the
// saved one, lanes wait while saves fail, and go on once the saver succeeds
// again.
func (t *tracker) lead(lane int, limit, most int64, fromSaved bool) (bool, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	q := &t.lanes[lane]
	base := t.done
	if fromSaved {
		base = t.saved
	}
	if q.len() == 0 {
		return true, nil
	}
	ahead := q.front() - (base + 1)
	if ahead < limit || (ahead < most && t.heldByFailure()) {
		return true, nil
	}
	return false, t.moved
}

// lowest returns the lowest index pending on any lane, and that lane; next
// and -1 when none is pending.
func (t *tracker) lowest() (low int64, lane int) {
	low, lane = t.next, -1
	for i := range t.lanes {
		if t.lanes[i].len() > 0 && t.lanes[i].front() < low {
			low, lane = t.lanes[i].front(), i
		}
	}
	return low, lane
}

// heldByFailure reports whether the lane with the lowest pending record,
// the one holding the checkpoint back, waits to retry a failed batch.
func (t *tracker) heldByFailure() bool {
	_, at := t.lowest()
	return at >= 0 && t.failing[at]
}

// isFailing reports whether lane waits to retry a failed batch.
func (t *tracker) isFailing(lane int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failing[lane]
}

// changed returns a channel closed when the checkpoint next moves or a lane
// starts failing.
func (t *tracker) changed() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.moved
}

// fail marks lane as waiting to retry a failed batch until it resolves
// records again, and wakes the lanes waiting in lead: they may now run
// further ahead.
func (t *tracker) fail(lane int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.failing[lane] {
		t.failing[lane] = true
		close(t.moved)
		t.moved = make(chan struct{})
	}
}

// checkpoint returns the index and sequence number of the resolved
// checkpoint.
func (t *tracker) checkpoint() (int64, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done, t.doneSeq
}

// markSaved records that the position of index idx was saved.
func (t *tracker) markSaved(idx int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if idx > t.saved {
		t.saved = idx
		close(t.moved)
		t.moved = make(chan struct{})
	}
}

// unsaved reports whether the resolved checkpoint is past the saved one.
func (t *tracker) unsaved() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done > t.saved
}

// pending reports how many records were read but are not yet resolved.
func (t *tracker) pending() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.next - t.done - 1
}
