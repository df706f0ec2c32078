package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Files written by esmd before the log format are bbolt databases, with a
// bucket per mapping and a key per shard. OpenFile reads such a file and
// rewrites it in the current format, keeping every position.

// boltMagic is the magic number of a bbolt meta page. A bbolt file starts
// with two meta pages, each a 16-byte page header and then the magic; the
// second is one page in, and bbolt opens from either.
const boltMagic = 0xED0CDAED

func isBolt(b []byte) bool {
	for _, at := range []int{0, 4096, 8192, 16384, 65536} {
		if len(b) >= at+20 && binary.LittleEndian.Uint32(b[at+16:at+20]) == boltMagic {
			return true
		}
	}
	return false
}

// readBolt returns the positions in the bbolt file at path, whose bytes
// are b. The open file holds the lock that bbolt would take, so bbolt
// reads a copy, written beside it under a name the next open removes if
// this one dies. Damage (bbolt refuses the file or panics on it, a value
// does not decode) wraps ErrCorrupt; failing to make the copy does not.
func readBolt(path string, b []byte, apply func(mappingName, shard string, val []byte) error) (err error) {
	tmp, err := createTemp(filepath.Dir(path), filepath.Base(path)+staleSuffix+"*")
	if err != nil {
		return fmt.Errorf("copy for reading: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy for reading: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			err = corrupt(fmt.Errorf("bbolt panicked: %v", r))
		}
	}()
	db, err := bolt.Open(tmp.Name(), 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	switch {
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return corrupt(err)
	case err != nil:
		return err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		var errs []error
		for e := range tx.Check() {
			errs = append(errs, e)
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			return bk.ForEach(func(k, v []byte) error {
				if v == nil {
					return fmt.Errorf("mapping %s: unexpected nested bucket %s", name, k)
				}
				return apply(string(name), string(k), v)
			})
		})
	})
	if err != nil {
		return corrupt(err)
	}
	return nil
}
