package checkpoint

import (
	"errors"
	"fmt"

	"github.com/esmd-dev/esmd/event"
)

// A stored position is one version byte, then the fields of that version.
//
// Version 1: a flags byte (bit 0: finished), then the sequence number as
// ASCII digits to the end of the value.
const (
	encodingV1   byte = 1
	flagFinished byte = 1 << 0
)

func encode(p event.Position) []byte { return appendEncoded(make([]byte, 0, encodedLen(p)), p) }

// appendEncoded appends encode(p) to b.
func appendEncoded(b []byte, p event.Position) []byte {
	var flags byte
	if p.Finished {
		flags |= flagFinished
	}
	b = append(b, encodingV1, flags)
	return append(b, p.Seq...)
}

// encodedLen is len(encode(p)).
func encodedLen(p event.Position) int { return 2 + len(p.Seq) }

func decode(v []byte) (event.Position, error) {
	if len(v) == 0 {
		return event.Position{}, errors.New("empty position value")
	}
	switch v[0] {
	case encodingV1:
		if len(v) < 2 {
			return event.Position{}, errors.New("position value too short")
		}
		if v[1]&^flagFinished != 0 {
			return event.Position{}, fmt.Errorf("position value has unknown flags %#x", v[1])
		}
		return event.Position{Seq: string(v[2:]), Finished: v[1]&flagFinished != 0}, nil
	}
	return event.Position{}, fmt.Errorf("position value has unknown encoding version %d (written by a newer esmd?)", v[0])
}
