package destinations

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
)

// File appends failure records to a local JSON Lines file, one record per
// line. Each Send opens the file, appends, fsyncs and closes it, so a send
// that returned nil is on disk and the file can be rotated (moved away) at
// any time. The file is created with mode 0600 and its missing parent
// directories with 0700. It is safe for concurrent use; writes from one
// process never interleave, and esmd processes sharing a file lock it
// (flock) while they append. A line left without its newline by a writer
// killed mid-write is cut off, with a warning, by the next Send: its own
// Send never returned, so its record is written again.
type File struct {
	path string
	log  *slog.Logger

	mu sync.Mutex
}

var _ mapping.Destination = (*File)(nil)

// NewFile returns the destination of target, file:///abs/path or
// file://relative/path (relative to the working directory at this call). It
// does no I/O besides resolving a relative path.
func NewFile(target string, logger *slog.Logger) (*File, error) {
	p, ok := strings.CutPrefix(target, "file://")
	if !ok || p == "" || strings.HasSuffix(p, "/") {
		return nil, fmt.Errorf("%w %q: want file:///abs/path or file://relative/path", ErrInvalidTarget, target)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrInvalidTarget, target, err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &File{path: abs, log: logger.With("destination", "file", "path", abs)}, nil
}

// Path is the absolute path of the file.
func (d *File) Path() string { return d.path }

// Send appends f's JSON and a newline in one write and fsyncs the file. If
// the write fails part-way, the partial line is cut off again, so the file
// holds only whole lines. It blocks on the disk; ctx is checked before the
// write, which itself is not interruptible.
func (d *File) Send(ctx context.Context, f *event.Failure) error {
	body, err := marshal(f)
	if err != nil {
		return fmt.Errorf("destination file %s: encode: %w", d.path, err)
	}
	line := append(body, '\n')

	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("destination file %s: %w", d.path, err)
	}
	if err := d.append(ctx, line); err != nil {
		return fmt.Errorf("destination file %s: append: %w", d.path, err)
	}
	d.log.DebugContext(ctx, "failure record sent", logAttrs(f)...)
	return nil
}

// append writes line at the end of the file and syncs it. Called with mu
// held.
func (d *File) append(ctx context.Context, line []byte) (err error) {
	fh, created, err := d.open()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := fh.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	// esmd processes sharing the file take turns, so that a line without
	// its newline below can only be a killed writer's. The lock goes with
	// the descriptor, at Close.
	if err := lockFile(ctx, fh); err != nil {
		return err
	}
	st, err := fh.Stat()
	if err != nil {
		return err
	}
	size, err := cutPartialLine(fh, st.Size())
	if err != nil {
		return fmt.Errorf("check the last line: %w", err)
	}
	if size < st.Size() {
		d.log.Warn("destination file ended in a partial line, left by a writer killed mid-write; cut it off so that the file holds whole lines only. Its Send never returned, so its batch is given up again and its record written anew",
			"bytes_cut", st.Size()-size)
	}
	if _, err := fh.Write(line); err != nil {
		// Best effort: drop the partial line so the next one starts clean.
		_ = fh.Truncate(size)
		return err
	}
	if err := fh.Sync(); err != nil {
		return err
	}
	if created {
		// Make the new directory entry durable too.
		return syncDir(filepath.Dir(d.path))
	}
	return nil
}

// lockPoll is how often lockFile tries again while another holds the lock.
const lockPoll = 20 * time.Millisecond

// lockFile takes fh's exclusive flock, trying again until ctx ends: another
// process may hold it for long (a writer on a stalled disk, an operator's
// flock), and a Send must stay cancellable meanwhile.
func lockFile(ctx context.Context, fh *os.File) error {
	var tick *time.Ticker
	for {
		err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return fmt.Errorf("lock: %w", err)
		}
		if tick == nil {
			tick = time.NewTicker(lockPoll)
			defer tick.Stop()
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("lock: another process holds the file's lock: %w", ctx.Err())
		}
	}
}

// cutPartialLine truncates fh, of size bytes, after its last newline when
// it does not end in one, and returns its size then.
func cutPartialLine(fh *os.File, size int64) (int64, error) {
	if size == 0 {
		return 0, nil
	}
	// The usual case: the file ends in a newline, one byte looked at.
	var last [1]byte
	if _, err := fh.ReadAt(last[:], size-1); err != nil {
		return size, err
	}
	if last[0] == '\n' {
		return size, nil
	}
	buf := make([]byte, 64<<10)
	end := size
	for end > 0 {
		n := min(end, int64(len(buf)))
		chunk := buf[:n]
		if _, err := fh.ReadAt(chunk, end-n); err != nil {
			return size, err
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	return end, fh.Truncate(end)
}

// open opens the file for appending, creating it and its parents when
// missing, and reports whether it was created.
func (d *File) open() (*os.File, bool, error) {
	// Read as well: append looks at the last line.
	const flags = os.O_RDWR | os.O_APPEND
	fh, err := os.OpenFile(d.path, flags, 0)
	if err == nil {
		return fh, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(d.path), 0o700); err != nil {
		return nil, false, err
	}
	fh, err = os.OpenFile(d.path, flags|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) { // created by someone else meanwhile
		fh, err = os.OpenFile(d.path, flags, 0)
		return fh, false, err
	}
	return fh, err == nil, err
}

// syncDir fsyncs a directory so that an entry just created in it survives a
// crash.
func syncDir(dir string) error {
	fh, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = fh.Sync()
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	return err
}
