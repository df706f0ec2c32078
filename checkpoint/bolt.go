package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/esmd-dev/esmd/event"
)

// Files written by esmd before the log format are bbolt databases, with a
// bucket per mapping and a key per shard. OpenFile reads such a file and
// rewrites it in the current format, keeping every position.

// boltMagic is the magic number of a bbolt meta page. The first page of a
// bbolt file is a meta page: a 16-byte page header, then the magic.
const boltMagic = 0xED0CDAED

func isBolt(b []byte) bool {
	return len(b) >= 20 && binary.LittleEndian.Uint32(b[16:20]) == boltMagic
}

var errPanic = errors.New("bbolt panicked")

// readBolt returns the positions in the bbolt file whose bytes are b. The
// open file holds the lock that bbolt would take, so bbolt reads a private
// copy. A damaged file, which can make bbolt panic, is an error.
func readBolt(b []byte) (state map[string]map[string]event.Position, err error) {
	dir, err := os.MkdirTemp("", "esmd-checkpoint-convert-")
	if err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	defer os.RemoveAll(dir)
	copyPath := filepath.Join(dir, "old.db")
	if err := os.WriteFile(copyPath, b, 0o600); err != nil {
		return nil, fmt.Errorf("convert: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			state, err = nil, fmt.Errorf("reading an older (bbolt) checkpoint file: %w: %v", errPanic, r)
		}
	}()
	db, err := bolt.Open(copyPath, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("reading an older (bbolt) checkpoint file: %w", err)
	}
	defer db.Close()
	state = map[string]map[string]event.Position{}
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
				p, err := decode(v)
				if err != nil {
					return fmt.Errorf("mapping %s shard %s: %w", name, k, err)
				}
				m := state[string(name)]
				if m == nil {
					m = map[string]event.Position{}
					state[string(name)] = m
				}
				m[string(k)] = p
				return nil
			})
		})
	})
	if err != nil {
		return nil, fmt.Errorf("reading an older (bbolt) checkpoint file: %w", err)
	}
	return state, nil
}
