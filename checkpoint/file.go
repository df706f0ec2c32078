package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

var _ mapping.Checkpointer = (*File)(nil)

// ErrClosed is returned by the methods of a File after Close.
var ErrClosed = errors.New("checkpoint store closed")

// ErrCorrupt is wrapped by the errors of a file that is damaged or is not a
// checkpoint file. esmd never starts afresh over such a file on its own.
var ErrCorrupt = errors.New("corrupted or not an esmd checkpoint file")

// ErrLocked is wrapped by the error of OpenFile when another process holds the
// file.
var ErrLocked = errors.New("locked by another process")

// DefaultLockTimeout is how long OpenFile waits for a file that another
// process holds before it gives up.
const DefaultLockTimeout = 3 * time.Second

// maxGroup bounds how many Saves share one transaction.
const maxGroup = 4096

// Option tunes OpenFile.
type Option func(*options)

type options struct {
	log         *slog.Logger
	lockTimeout time.Duration
	compactAt   int64 // tests lower it
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// WithLockTimeout sets how long OpenFile waits for a file locked by another
// process (DefaultLockTimeout by default). Zero or less waits the default.
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lockTimeout = d
		}
	}
}

// File is the embedded checkpoint store: one file holding a log of the
// positions saved (format.go), replayed into memory when it opens. It is
// safe for concurrent use.
//
// Saves queue their positions. A Save that finds no write under way leads:
// it takes every position queued, appends them as one frame, syncs it to
// disk (one fdatasync), answers them all, and goes on while more are
// queued, so concurrent Saves from many shards share one sync. A lone Save
// writes on its own goroutine, with no hand-over to another. When the log
// has grown well past what it holds, the leader writes the positions into
// a new file and renames it over the old one (compaction).
type File struct {
	path string // as given, for messages
	real string // path with symbolic links resolved: the file renamed over
	log  *slog.Logger

	mu    sync.RWMutex
	state map[string]map[string]event.Position // synced positions: mapping, shard

	// Owned by the leading Save (and by OpenFile before any).
	file      *os.File // the open, locked log
	end       int64    // where the next frame goes
	alloc     int64    // the file's synced size: zeros from end to alloc
	logged    int64    // bytes of frames since the file was last written whole
	compactAt int64    // logged may reach this before a rewrite (minCompact)
	retryAt   int64    // after a failed compaction, logged may reach this
	rewrites  int      // files written whole, for tests
	live      int64    // bytes a frame of every position would take
	broken    error    // set by a failed write: the next commit rewrites the file
	buf       []byte   // commit's frame
	snap      []byte   // rewrite's file

	qmu     sync.Mutex
	queue   []*saveReq // waiting for the leader
	spare   []*saveReq // the leader's group, reused
	leading bool       // a Save is writing
	closed  bool       // Close was called
	idle    sync.Cond  // on qmu: signalled when leading goes false

	closeOnce sync.Once
	closeErr  error
}

type saveReq struct {
	mapping, shard string
	p              event.Position
	done           chan error // buffered: the leader never blocks on it
}

const (
	// chunk is how far ahead of the log the file is grown with zeros.
	chunk = 64 << 10
	// minCompact is how many bytes of frames the log takes before it may
	// be rewritten; past it, it is rewritten once it holds twice what a
	// fresh file would.
	minCompact = 1 << 20
)

// OpenFile opens the checkpoint file at path, creating it (0600) and its
// folder (0700) when missing. It blocks for up to the lock timeout when
// another process holds the file, and then fails with an error wrapping
// ErrLocked. A damaged file or one that is not a checkpoint file fails with
// an error wrapping ErrCorrupt; OpenFile never replaces it. A file written
// by an older esmd (a bbolt database) is rewritten in the current format
// with the same positions. A frame torn by a crash while it was written,
// whose Save never returned, is dropped. Close the File when done.
func OpenFile(path string, opts ...Option) (*File, error) {
	o := options{log: slog.New(slog.DiscardHandler), lockTimeout: DefaultLockTimeout, compactAt: minCompact}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" {
		return nil, errors.New("checkpoint: open: empty file path")
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("checkpoint file %s: create folder: %w", path, err)
	}
	// A rewrite renames a new file over the old: over the file a link
	// points to, not over the link.
	real, err := followLinks(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint file %s: %w", path, err)
	}
	file, created, err := openLocked(real, o.lockTimeout)
	switch {
	case errors.Is(err, errLockTimeout):
		return nil, fmt.Errorf("checkpoint file %s: %w (is another esmd running with this file?): gave up after %s",
			path, ErrLocked, o.lockTimeout)
	case err != nil:
		return nil, fmt.Errorf("checkpoint file %s: open: %w", path, err)
	}
	f := &File{
		path:      path,
		real:      real,
		log:       o.log,
		file:      file,
		state:     map[string]map[string]event.Position{},
		live:      int64(frameHeadLen),
		compactAt: o.compactAt,
	}
	if err := f.load(created); err != nil {
		_ = f.file.Close() // the new file, if load rewrote it
		return nil, fmt.Errorf("checkpoint file %s: %w", path, err)
	}
	f.idle.L = &f.qmu
	f.log.Info("checkpoint file opened", "path", path, "created", created)
	return f, nil
}

// load reads the open file into f.state, then writes it whole into a new
// file renamed over this one (an older bbolt file is read, a new empty one
// gets its first header). Writing at every open drops a tail that a crash
// tore, makes the size and the name of the file durable, and finds out
// now, not at the first compaction hours later, when the file cannot be
// replaced in its folder.
//
// created says that openLocked has just made the file. An empty file it did
// not make is refused: esmd never leaves one (see create), so it was
// emptied, and taking it for a new file would start every shard over.
func (f *File) load(created bool) error {
	removeStale(f.real)
	fi, err := f.file.Stat()
	if err != nil {
		return fmt.Errorf("stat: %w", f.pathErr(err))
	}
	if fi.Size() == 0 && !created {
		return corrupt(errors.New("the file is empty, which esmd never leaves it: it was truncated or replaced; if it was created empty on purpose (touch, systemd-tmpfiles), delete it and let esmd create it"))
	}
	if err := f.read(fi.Size()); err != nil {
		return err
	}
	if err := f.rewrite(nil); err != nil {
		return fmt.Errorf("%w; %s", err, replaceHint)
	}
	return nil
}

// read loads the positions of a file of size bytes.
func (f *File) read(size int64) error {
	// Look at the start before reading a file that may be anything.
	head := make([]byte, min(size, 1<<17)) // both bbolt meta pages, at any page size
	if _, err := f.file.ReadAt(head, 0); err != nil {
		return fmt.Errorf("read: %w", f.pathErr(err))
	}
	// The header decides; the bbolt magic is looked for only in a file
	// without one, as a log's bytes may hold it anywhere.
	headerErr := checkHeader(head)
	if headerErr != nil && !isBolt(head) {
		return corrupt(headerErr)
	}
	b := head
	if size > int64(len(head)) {
		b = make([]byte, size)
		copy(b, head)
		if _, err := f.file.ReadAt(b[len(head):], int64(len(head))); err != nil {
			return fmt.Errorf("read: %w", f.pathErr(err))
		}
	}
	put := func(mappingName, shard string, val []byte) error {
		p, err := decode(val)
		if err != nil {
			return fmt.Errorf("mapping %s shard %s: %w", mappingName, shard, err)
		}
		f.put(mappingName, shard, p)
		return nil
	}
	if headerErr != nil {
		if err := readBolt(f.real, b, put); err != nil {
			return fmt.Errorf("convert from the older (bbolt) format: %w", err)
		}
		f.log.Info("checkpoint file converted from the older (bbolt) format", "path", f.path, "mappings", len(f.state))
		return nil
	}
	sc, err := scan(b, put)
	if err != nil {
		return corrupt(err)
	}
	if sc.torn {
		// The tail is a frame whose sync a crash cut short: its Saves
		// never returned. The rewrite that follows leaves it out.
		f.log.Warn("checkpoint file: dropped the last write, cut short by a crash before it was acknowledged",
			"path", f.path, "at_byte", sc.end)
	}
	return nil
}

// replaceHint says what to do when esmd cannot put a new file beside the
// checkpoint file.
const replaceHint = "esmd writes this file by renaming a new one over it: give esmd a folder it can write, and mount the folder, not the file alone, into a container"

// corrupt wraps err, about a damaged file, in ErrCorrupt.
func corrupt(err error) error {
	return fmt.Errorf("%w (move it away to start over, or restore a copy): %w", ErrCorrupt, err)
}

// pathErr names the checkpoint file, not the new file it was written as,
// in an error about the open file.
func (f *File) pathErr(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) && pe.Path != f.path {
		return &os.PathError{Op: pe.Op, Path: f.path, Err: pe.Err}
	}
	return err
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Load returns the saved position of shard in mapping, or a zero Position
// when there is none. It reads synced state only and does not wait for
// Saves in flight.
func (f *File) Load(ctx context.Context, mappingName, shard string) (event.Position, error) {
	if err := f.check(ctx); err != nil {
		return event.Position{}, fmt.Errorf("checkpoint file %s: load %s/%s: %w", f.path, mappingName, shard, err)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.state[mappingName][shard], nil
}

// All returns the saved position of every shard of mapping, keyed by shard
// id; the map is empty when there is none.
func (f *File) All(ctx context.Context, mappingName string) (map[string]event.Position, error) {
	if err := f.check(ctx); err != nil {
		return nil, fmt.Errorf("checkpoint file %s: read %s: %w", f.path, mappingName, err)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make(map[string]event.Position, len(f.state[mappingName]))
	maps.Copy(out, f.state[mappingName])
	return out, nil
}

// Mappings returns the names of the mappings that have saved positions, in
// byte order.
func (f *File) Mappings(ctx context.Context) ([]string, error) {
	if err := f.check(ctx); err != nil {
		return nil, fmt.Errorf("checkpoint file %s: list mappings: %w", f.path, err)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Sorted(maps.Keys(f.state)), nil
}

// Save stores p as the position of shard in mapping. It blocks until the
// position is synced to disk, together with any other Saves that were
// waiting, and returns nil only then. On an error (a write or sync failure,
// a full disk, ctx done, the store closed) the position may or may not have
// been stored; the one loaded afterwards is always one that was written
// whole. A Save waiting for another's write returns ctx's error when ctx
// ends; a Save that is writing finishes its write first.
func (f *File) Save(ctx context.Context, mappingName, shard string, p event.Position) error {
	if err := f.save(ctx, mappingName, shard, p); err != nil {
		return fmt.Errorf("checkpoint file %s: save %s/%s: %w", f.path, mappingName, shard, err)
	}
	return nil
}

func (f *File) save(ctx context.Context, mappingName, shard string, p event.Position) error {
	if err := validName(mappingName, shard); err != nil {
		return err
	}
	if len(p.Seq) > maxSeqLen {
		return fmt.Errorf("sequence number of %d bytes, more than %d", len(p.Seq), maxSeqLen)
	}
	f.qmu.Lock()
	if err := f.checkLocked(ctx); err != nil {
		f.qmu.Unlock()
		return err
	}
	r := &saveReq{mapping: mappingName, shard: shard, p: p, done: make(chan error, 1)}
	f.queue = append(f.queue, r)
	if !f.leading {
		f.leading = true
		f.lead(r)
		return <-r.done
	}
	f.qmu.Unlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lead commits the queue, in groups of up to maxGroup, until it is empty.
// It is called with qmu held and leading set, and returns with qmu
// released. Once own is answered, a goroutine of its own takes over what
// is still queued, so that a Save does not go on writing for other shards.
func (f *File) lead(own *saveReq) {
	for {
		n := min(len(f.queue), maxGroup)
		group := append(f.spare[:0], f.queue[:n]...)
		rest := copy(f.queue, f.queue[n:])
		clear(f.queue[rest:])
		f.queue = f.queue[:rest]
		f.qmu.Unlock()
		f.commit(group)
		f.qmu.Lock()
		f.spare = group[:0]
		if len(f.queue) == 0 {
			f.leading = false
			f.idle.Broadcast()
			f.qmu.Unlock()
			return
		}
		if own != nil && len(own.done) > 0 {
			f.qmu.Unlock()
			go func() {
				f.qmu.Lock()
				f.lead(nil)
			}()
			return
		}
	}
}

// Close writes the Saves already queued, waits for the write under way
// and closes the file. It is idempotent; Saves after Close fail with
// ErrClosed.
func (f *File) Close() error {
	f.closeOnce.Do(func() {
		f.qmu.Lock()
		f.closed = true
		for f.leading {
			f.idle.Wait()
		}
		f.qmu.Unlock()
		if err := f.file.Close(); err != nil {
			f.closeErr = fmt.Errorf("checkpoint file %s: close: %w", f.path, err)
		}
	})
	return f.closeErr
}

func (f *File) check(ctx context.Context) error {
	f.qmu.Lock()
	defer f.qmu.Unlock()
	return f.checkLocked(ctx)
}

// checkLocked is check with qmu held.
func (f *File) checkLocked(ctx context.Context) error {
	if f.closed {
		return ErrClosed
	}
	return ctx.Err()
}

// commit makes a group of Saves durable and answers them: it appends them
// as one frame and syncs it, or, when the log is due for compaction or the
// last write failed, rewrites the whole file with them.
func (f *File) commit(group []*saveReq) {
	start := time.Now()
	b := startFrame(f.buf[:0])
	for _, r := range group {
		b = appendPosition(b, r.mapping, r.shard, r.p)
	}
	b = finishFrame(b, 0)
	f.buf = b
	var err error
	switch {
	case f.broken != nil:
		err = f.rewrite(b[frameHeadLen:])
	case f.logged+int64(len(b)) > max(f.compactAt, 2*f.live, f.retryAt):
		err = f.rewrite(b[frameHeadLen:])
		if ie := (*intactError)(nil); errors.As(err, &ie) {
			// The log is as it was (a full disk, say): append to it,
			// and try to compact again once it grew by as much again.
			f.log.Warn("checkpoint file: compaction failed; appending, and trying again later", "path", f.path, "err", err)
			f.retryAt = f.logged + max(f.compactAt, 2*f.live)
			err = f.append(b)
		}
	default:
		err = f.append(b)
	}
	if err == nil {
		f.mu.Lock()
		for _, r := range group {
			f.put(r.mapping, r.shard, r.p)
		}
		f.mu.Unlock()
	} else if ie := (*intactError)(nil); !errors.As(err, &ie) {
		f.broken = err
	}
	for i, r := range group {
		r.done <- err
		group[i] = nil
	}
	if err == nil && f.log.Enabled(context.Background(), slog.LevelDebug) {
		f.log.Debug("checkpoints saved", "count", len(group), "duration", time.Since(start))
	}
}

// append writes the frame b at the end of the log and syncs it. When it
// does not fit in the zeros ahead, the file first grows by zeros, synced
// on their own: a frame is never written past the file's synced size, so a
// file that ends inside a frame was cut short, not torn by a crash.
func (f *File) append(b []byte) error {
	at := headAligned(f.end)
	if need := at + int64(len(b)); need > f.alloc {
		grow := (need - f.alloc + chunk - 1) / chunk * chunk
		if _, err := f.file.WriteAt(make([]byte, grow), f.alloc); err != nil {
			return &intactError{fmt.Errorf("grow: %w", f.pathErr(err))}
		}
		if err := fdatasync(f.file); err != nil {
			return fmt.Errorf("grow: sync: %w", err)
		}
		f.alloc += grow
	}
	if _, err := f.file.WriteAt(b, at); err != nil {
		return fmt.Errorf("write: %w", f.pathErr(err))
	}
	if err := fdatasync(f.file); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	f.logged += at + int64(len(b)) - f.end
	f.end = at + int64(len(b))
	return nil
}

// intactError is a failed write that left the log as it was, so that the
// next commit may append to it: writing the zeros that grow the file (past
// the log only), or a rewrite that failed before its rename.
type intactError struct{ err error }

func (e *intactError) Error() string { return e.err.Error() }
func (e *intactError) Unwrap() error { return e.err }

// rewrite writes every synced position, and the group's on top of them,
// into a new file, syncs it and renames it over the log: compaction, and
// the way back to a known file after a failed write.
func (f *File) rewrite(pending []byte) (err error) {
	f.mu.RLock()
	// Not f.buf: commit may append its frame still when this fails.
	b := appendHeader(f.snap[:0])
	b = startFrame(b)
	for _, m := range slices.Sorted(maps.Keys(f.state)) {
		shards := f.state[m]
		for _, s := range slices.Sorted(maps.Keys(shards)) {
			b = appendPosition(b, m, s, shards[s])
		}
	}
	f.mu.RUnlock()
	b = append(b, pending...)
	if len(b)-headerLen-frameHeadLen > math.MaxUint32 {
		return &intactError{errors.New("compact: the positions are too large for one frame")}
	}
	b = finishFrame(b, headerLen)
	f.snap = b[:0]

	dir := filepath.Dir(f.real)
	tmp, err := createTemp(dir, filepath.Base(f.real)+staleSuffix+"*")
	if err != nil {
		return &intactError{fmt.Errorf("compact: create a new file: %w", err)}
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := sameAccess(tmp, f.file); err != nil {
		return &intactError{fmt.Errorf("compact: give the new file the old one's permissions: %w", err)}
	}
	if _, err := tmp.Write(b); err != nil {
		return &intactError{fmt.Errorf("compact: write the new file: %w", err)}
	}
	if err := fdatasync(tmp); err != nil {
		return &intactError{fmt.Errorf("compact: sync the new file: %w", err)}
	}
	if err := tryLock(tmp); err != nil {
		return &intactError{fmt.Errorf("compact: lock the new file: %w", err)}
	}
	if err := os.Rename(tmp.Name(), f.real); err != nil {
		return &intactError{fmt.Errorf("compact: %w", err)}
	}
	// From here the new file is the log, whatever the folder's sync says.
	renamed = true
	old := f.file
	f.file, f.end, f.alloc, f.logged, f.broken, f.retryAt = tmp, int64(len(b)), int64(len(b)), 0, nil, 0
	f.rewrites++
	_ = old.Close()
	if err := syncFolder(dir); err != nil {
		return fmt.Errorf("compact: sync the folder: %w", err)
	}
	return nil
}

// sameAccess gives dst the permission bits of src and, where the process
// may change them, its owner and group: replacing the file must not change
// who can read or write the checkpoints (a file an operator made readable
// to a monitoring group, say). A process that may not give the file away
// keeps it as its own, which it could write before as well.
func sameAccess(dst, src *os.File) error {
	old, err := src.Stat()
	if err != nil {
		return err
	}
	if err := dst.Chmod(old.Mode().Perm()); err != nil {
		return err
	}
	now, err := dst.Stat()
	if err != nil {
		return err
	}
	o, ok1 := old.Sys().(*syscall.Stat_t)
	n, ok2 := now.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 || (o.Uid == n.Uid && o.Gid == n.Gid) {
		return nil
	}
	if err := dst.Chown(int(o.Uid), int(o.Gid)); err != nil && !errors.Is(err, os.ErrPermission) {
		return err
	}
	return nil
}

// followLinks returns the file path names after any symbolic links in its
// last element, which may point to a file that does not exist yet.
func followLinks(path string) (string, error) {
	for range 40 {
		fi, err := os.Lstat(path)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return path, nil
		}
		to, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(to) {
			// Relative to the folder the link is in, as the kernel
			// resolves it: through that folder's own links.
			dir, err := filepath.EvalSymlinks(filepath.Dir(path))
			if err != nil {
				return "", err
			}
			to = filepath.Join(dir, to)
		}
		path = to
	}
	return "", errors.New("too many levels of symbolic links")
}

// createTemp is os.CreateTemp and syncFolder is syncDir; tests replace
// them.
var (
	createTemp = os.CreateTemp
	syncFolder = syncDir
)

// put records p and keeps f.live, the length of a frame holding every
// position, up to date. The caller holds mu or is OpenFile.
func (f *File) put(mappingName, shard string, p event.Position) {
	m := f.state[mappingName]
	if m == nil {
		m = map[string]event.Position{}
		f.state[mappingName] = m
	}
	if old, ok := m[shard]; ok {
		f.live -= int64(entryLen(mappingName, shard, encodedLen(old)))
	}
	f.live += int64(entryLen(mappingName, shard, encodedLen(p)))
	m[shard] = p
}

// staleSuffix marks the new files of rewrite until they are renamed.
const staleSuffix = ".rewrite-"

// removeStale deletes the new files a rewrite left when the process died
// before renaming one. The caller holds the lock, so no rewrite is under
// way.
func removeStale(path string) {
	dir, prefix := filepath.Dir(path), filepath.Base(path)+staleSuffix
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// maxNameLen bounds mapping names and shard ids.
const maxNameLen = 32 << 10

func validName(mappingName, shard string) error {
	switch {
	case mappingName == "":
		return errors.New("empty mapping name")
	case shard == "":
		return errors.New("empty shard id")
	case len(mappingName) > maxNameLen:
		return errors.New("mapping name too long")
	case len(shard) > maxNameLen:
		return errors.New("shard id too long")
	}
	return nil
}

// maxSeqLen bounds a position's sequence number; Kinesis and DynamoDB
// Streams use up to 128 digits.
const maxSeqLen = 4 << 10

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
