package checkpoint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// errLockTimeout is returned by openLocked when another open file holds the
// lock for the whole timeout.
var errLockTimeout = errors.New("lock timeout")

// lockHook, when a test sets it, runs between opening the file and taking
// its lock.
var lockHook func()

// lockPoll is how often openLocked tries the lock again while it waits.
const lockPoll = 50 * time.Millisecond

// openLocked opens the file at path and takes an exclusive flock on it,
// waiting up to timeout for another holder. When there is no file it
// creates one (0600, see create) and reports so.
//
// The store replaces its file by renaming a new one over it (compaction).
// A process that waited on the old file's lock would then hold the lock of
// a file no longer at path, so once the lock is taken openLocked checks that
// the open file is still the one at path, and starts again if not.
func openLocked(path string, timeout time.Duration) (f *os.File, created bool, err error) {
	deadline := time.Now().Add(timeout)
	var tick *time.Ticker
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			f, err = create(path)
			if errors.Is(err, fs.ErrExist) {
				continue // created by another process meanwhile: open it
			}
			return f, err == nil, err
		}
		if err != nil {
			return nil, false, err
		}
		if lockHook != nil {
			lockHook()
		}
		err = tryLock(f)
		if err == nil {
			same, serr := samePath(f, path)
			if serr != nil {
				_ = f.Close()
				return nil, false, serr
			}
			if same {
				return f, false, nil
			}
			// Replaced while we waited: open the new one.
			_ = f.Close()
			continue
		}
		_ = f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return nil, false, fmt.Errorf("lock: %w", err)
		}
		if !time.Now().Before(deadline) {
			return nil, false, errLockTimeout
		}
		if tick == nil {
			tick = time.NewTicker(lockPoll)
		}
		<-tick.C
	}
}

// create makes a new checkpoint file at path, holding a header, locked.
// The file is whole before it has its name: it is written and synced under
// a temporary name, then linked to path, which fails with an error
// wrapping fs.ErrExist when a file is there by then. So a file at path is
// never empty unless something other than esmd emptied it, and an empty
// one can be refused as damaged rather than taken for a new file, which
// would start every shard over at its StartingPosition. Where the file
// system has no hard links, the file is created at path directly and the
// header written at once.
func create(path string) (f *os.File, err error) {
	dir := filepath.Dir(path)
	tmp, err := createTemp(dir, filepath.Base(path)+staleSuffix+"*")
	if err != nil {
		return nil, fmt.Errorf("create: %w; %s", err, replaceHint)
	}
	defer func() {
		_ = os.Remove(tmp.Name())
		if err != nil {
			_ = tmp.Close()
		}
	}()
	if err := writeHeader(tmp); err != nil {
		return nil, err
	}
	if err := tryLock(tmp); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		_ = tmp.Close()
		return createInPlace(path)
	}
	if err := syncFolder(dir); err != nil {
		return nil, fmt.Errorf("sync the folder: %w", err)
	}
	return tmp, nil
}

// createInPlace is create without a hard link.
func createInPlace(path string) (f *os.File, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
		}
	}()
	if err := tryLock(f); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if err := writeHeader(f); err != nil {
		return nil, err
	}
	if err := syncFolder(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("sync the folder: %w", err)
	}
	return f, nil
}

// writeHeader writes a new file's header and syncs it.
func writeHeader(f *os.File) error {
	if _, err := f.Write(appendHeader(nil)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := fdatasync(f); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

// samePath reports whether f is the file now at path.
func samePath(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}

// tryLock takes f's exclusive flock without waiting. The store also takes
// it on a new file that no one else can have opened yet, before renaming
// it into place.
func tryLock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}
