package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

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

// File is the embedded checkpoint store: one bbolt file, a bucket per mapping
// and a key per shard. It is safe for concurrent use.
//
// One goroutine, started by OpenFile and stopped by Close, owns the writes:
// each Save hands it a request and waits. The goroutine takes every request
// that is waiting, writes them in one transaction, syncs it to disk and then
// answers them all, so concurrent Saves from many shards share one sync
// without any added delay for a lone Save.
type File struct {
	db   *bolt.DB
	path string
	log  *slog.Logger

	reqs    chan *saveReq
	closing chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer goroutine has returned

	closeOnce sync.Once
	closeErr  error
}

type saveReq struct {
	mapping, shard string
	val            []byte
	done           chan error // buffered: the writer never blocks on it
}

// OpenFile opens the checkpoint file at path, creating it (0600) and its
// folder (0700) when missing. It blocks for up to the lock timeout when
// another process holds the file, and then fails with an error wrapping
// ErrLocked. A damaged file or one that is not a checkpoint file fails with
// an error wrapping ErrCorrupt; OpenFile never replaces it. Close the File
// when done.
func OpenFile(path string, opts ...Option) (*File, error) {
	o := options{log: slog.New(slog.DiscardHandler), lockTimeout: DefaultLockTimeout}
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
	_, statErr := os.Stat(path)
	created := errors.Is(statErr, fs.ErrNotExist)

	db, err := openBolt(path, o.lockTimeout)
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("checkpoint file %s: %w (is another esmd running with this file?): gave up after %s",
			path, ErrLocked, o.lockTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, errPanic):
		return nil, fmt.Errorf("checkpoint file %s: %w (move it away to start over, or restore a copy): %w",
			path, ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("checkpoint file %s: open: %w", path, err)
	}
	if created {
		// Make the new file's name durable too, not only its content.
		if err := syncDir(dir); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("checkpoint file %s: sync folder: %w", path, err)
		}
	}
	if err := verify(db); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("checkpoint file %s: %w (move it away to start over, or restore a copy): %w",
			path, ErrCorrupt, err)
	}
	f := &File{
		db:      db,
		path:    path,
		log:     o.log,
		reqs:    make(chan *saveReq, maxGroup),
		closing: make(chan struct{}),
		stopped: make(chan struct{}),
	}
	go f.write()
	f.log.Info("checkpoint file opened", "path", path, "created", created)
	return f, nil
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Load returns the saved position of shard in mapping, or a zero Position
// when there is none. It reads committed state only and does not wait for
// Saves in flight.
func (f *File) Load(ctx context.Context, mappingName, shard string) (event.Position, error) {
	if err := f.check(ctx); err != nil {
		return event.Position{}, fmt.Errorf("checkpoint file %s: load %s/%s: %w", f.path, mappingName, shard, err)
	}
	var p event.Position
	err := f.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(mappingName))
		if b == nil {
			return nil
		}
		v := b.Get([]byte(shard))
		if v == nil {
			return nil
		}
		var err error
		p, err = decode(v)
		return err
	})
	if err != nil {
		return event.Position{}, fmt.Errorf("checkpoint file %s: load %s/%s: %w", f.path, mappingName, shard, err)
	}
	return p, nil
}

// All returns the saved position of every shard of mapping, keyed by shard
// id; the map is empty when there is none.
func (f *File) All(ctx context.Context, mappingName string) (map[string]event.Position, error) {
	if err := f.check(ctx); err != nil {
		return nil, fmt.Errorf("checkpoint file %s: read %s: %w", f.path, mappingName, err)
	}
	out := make(map[string]event.Position)
	err := f.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(mappingName))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			p, err := decode(v)
			if err != nil {
				return fmt.Errorf("shard %s: %w", k, err)
			}
			out[string(k)] = p
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint file %s: read %s: %w", f.path, mappingName, err)
	}
	return out, nil
}

// Mappings returns the names of the mappings that have saved positions, in
// byte order.
func (f *File) Mappings(ctx context.Context) ([]string, error) {
	if err := f.check(ctx); err != nil {
		return nil, fmt.Errorf("checkpoint file %s: list mappings: %w", f.path, err)
	}
	var names []string
	err := f.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint file %s: list mappings: %w", f.path, err)
	}
	return names, nil
}

// Save stores p as the position of shard in mapping. It blocks until the
// position is synced to disk, together with any other Saves that were
// waiting, and returns nil only then. On an error (a write or sync failure,
// a full disk, ctx done, the store closed) the position may or may not have
// been stored; the one loaded afterwards is always one that was written
// whole. When ctx ends while the write is under way Save returns ctx's error
// without waiting for it.
func (f *File) Save(ctx context.Context, mappingName, shard string, p event.Position) error {
	if err := validName(mappingName, shard); err != nil {
		return fmt.Errorf("checkpoint file %s: save %s/%s: %w", f.path, mappingName, shard, err)
	}
	if err := f.check(ctx); err != nil {
		return fmt.Errorf("checkpoint file %s: save %s/%s: %w", f.path, mappingName, shard, err)
	}
	r := &saveReq{mapping: mappingName, shard: shard, val: encode(p), done: make(chan error, 1)}
	select {
	case f.reqs <- r:
	case <-f.closing:
		return fmt.Errorf("checkpoint file %s: save %s/%s: %w", f.path, mappingName, shard, ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("checkpoint file %s: save %s/%s: %w", f.path, mappingName, shard, ctx.Err())
	}
	var err error
	select {
	case err = <-r.done:
	case <-ctx.Done():
		err = ctx.Err()
	case <-f.stopped:
		select {
		case err = <-r.done:
		default:
			err = ErrClosed
		}
	}
	if err != nil {
		return fmt.Errorf("checkpoint file %s: save %s/%s: %w", f.path, mappingName, shard, err)
	}
	return nil
}

// Close writes the Saves already handed over, stops the writer and closes
// the file. It is idempotent; Saves after Close fail with ErrClosed.
func (f *File) Close() error {
	f.closeOnce.Do(func() {
		close(f.closing)
		<-f.stopped
		if err := f.db.Close(); err != nil {
			f.closeErr = fmt.Errorf("checkpoint file %s: close: %w", f.path, err)
		}
	})
	return f.closeErr
}

func (f *File) check(ctx context.Context) error {
	select {
	case <-f.closing:
		return ErrClosed
	default:
	}
	return ctx.Err()
}

// write is the writer goroutine: it commits groups of waiting Saves until
// Close, then commits what is still queued and returns.
func (f *File) write() {
	defer close(f.stopped)
	group := make([]*saveReq, 0, 64)
	for {
		select {
		case r := <-f.reqs:
			group = append(group[:0], r)
		case <-f.closing:
			group = f.take(group[:0])
			if len(group) > 0 {
				f.commit(group)
			}
			return
		}
		f.commit(f.take(group))
	}
}

// take appends the requests waiting in the queue, without blocking.
func (f *File) take(group []*saveReq) []*saveReq {
	for len(group) < maxGroup {
		select {
		case r := <-f.reqs:
			group = append(group, r)
		default:
			return group
		}
	}
	return group
}

func (f *File) commit(group []*saveReq) {
	start := time.Now()
	err := f.db.Update(func(tx *bolt.Tx) error {
		var (
			b    *bolt.Bucket
			name string
		)
		for _, r := range group {
			if b == nil || r.mapping != name {
				var err error
				if b, err = tx.CreateBucketIfNotExists([]byte(r.mapping)); err != nil {
					return fmt.Errorf("mapping %s: %w", r.mapping, err)
				}
				name = r.mapping
			}
			if err := b.Put([]byte(r.shard), r.val); err != nil {
				return fmt.Errorf("shard %s/%s: %w", r.mapping, r.shard, err)
			}
		}
		return nil
	})
	for i, r := range group {
		r.done <- err
		group[i] = nil
	}
	if err == nil {
		f.log.Debug("checkpoints saved", "count", len(group), "duration", time.Since(start))
	}
}

func validName(mappingName, shard string) error {
	switch {
	case mappingName == "":
		return errors.New("empty mapping name")
	case shard == "":
		return errors.New("empty shard id")
	case len(mappingName) > bolt.MaxKeySize:
		return errors.New("mapping name too long")
	case len(shard) > bolt.MaxKeySize:
		return errors.New("shard id too long")
	}
	return nil
}

var errPanic = errors.New("bbolt panicked")

// openBolt opens the bbolt file. bbolt panics on some damaged pages while it
// opens; that is returned as an error wrapping errPanic, and the file is
// closed so that its lock is released.
func openBolt(path string, lockTimeout time.Duration) (db *bolt.DB, err error) {
	var file *os.File
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			db, err = nil, fmt.Errorf("%w: %v", errPanic, r)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{
		Timeout: lockTimeout,
		OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			file = f
			return f, err
		},
	})
}

// verify checks the file's pages and that every stored value decodes. A
// damaged page can make bbolt panic on read; that is reported as an error.
func verify(db *bolt.DB) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("reading pages: %w: %v", errPanic, r)
		}
	}()
	return db.View(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if v == nil {
					return fmt.Errorf("mapping %s: unexpected nested bucket %s", name, k)
				}
				if _, err := decode(v); err != nil {
					return fmt.Errorf("mapping %s shard %s: %w", name, k, err)
				}
				return nil
			})
		})
	})
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
