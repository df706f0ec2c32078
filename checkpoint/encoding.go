package checkpoint

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// A stored position is one version byte, then the fields of that version.
//
// Version 1: a flags byte (bit 0: finished; bit 1: since), then, with
// since, the Since time in Unix nanoseconds (int64 big-endian), then the
// sequence number as ASCII digits to the end of the value. Since is newer
// than the version: an esmd that predates it refuses such a value as having
// unknown flags rather than misread it.
const (
	encodingV1   byte = 1
	flagFinished byte = 1 << 0
	flagSince    byte = 1 << 1
)

func encode(p event.Position) []byte { return appendEncoded(make([]byte, 0, encodedLen(p)), p) }

// appendEncoded appends encode(p) to b.
func appendEncoded(b []byte, p event.Position) []byte {
	var flags byte
	if p.Finished {
		flags |= flagFinished
	}
	if !p.Since.IsZero() {
		flags |= flagSince
	}
	b = append(b, encodingV1, flags)
	if !p.Since.IsZero() {
		b = binary.BigEndian.AppendUint64(b, uint64(p.Since.UnixNano()))
	}
	return append(b, p.Seq...)
}

// encodedLen is len(encode(p)).
func encodedLen(p event.Position) int {
	if !p.Since.IsZero() {
		return 10 + len(p.Seq)
	}
	return 2 + len(p.Seq)
}

func decode(v []byte) (event.Position, error) {
	if len(v) == 0 {
		return event.Position{}, errors.New("empty position value")
	}
	switch v[0] {
	case encodingV1:
		if len(v) < 2 {
			return event.Position{}, errors.New("position value too short")
		}
		flags := v[1]
		if flags&^(flagFinished|flagSince) != 0 {
			return event.Position{}, fmt.Errorf("position value has unknown flags %#x (written by a newer esmd?)", flags)
		}
		p := event.Position{Finished: flags&flagFinished != 0}
		rest := v[2:]
		if flags&flagSince != 0 {
			if len(rest) < 8 {
				return event.Position{}, errors.New("position value too short for its since time")
			}
			p.Since = time.Unix(0, int64(binary.BigEndian.Uint64(rest))).UTC()
			rest = rest[8:]
		}
		p.Seq = string(rest)
		return p, nil
	}
	return event.Position{}, fmt.Errorf("position value has unknown encoding version %d (written by a newer esmd?)", v[0])
}
