package checkpoint

import (
	"errors"
	"fmt"
	"os"
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

// openLocked opens (creating it, 0600, when missing) the file at path and
// takes an exclusive flock on it, waiting up to timeout for another holder.
//
// The store replaces its file by renaming a new one over it (compaction).
// A process that waited on the old file's lock would then hold the lock of
// a file no longer at path, so once the lock is taken openLocked checks that
// the open file is still the one at path, and starts again if not.
func openLocked(path string, timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	var tick *time.Ticker
	defer func() {
		if tick != nil {
			tick.Stop()
		}
	}()
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if lockHook != nil {
			lockHook()
		}
		err = tryLock(f)
		if err == nil {
			same, serr := samePath(f, path)
			if serr != nil {
				_ = f.Close()
				return nil, serr
			}
			if same {
				return f, nil
			}
			// Replaced while we waited: open the new one.
			_ = f.Close()
			continue
		}
		_ = f.Close()
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return nil, fmt.Errorf("lock: %w", err)
		}
		if !time.Now().Before(deadline) {
			return nil, errLockTimeout
		}
		if tick == nil {
			tick = time.NewTicker(lockPoll)
		}
		<-tick.C
	}
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
