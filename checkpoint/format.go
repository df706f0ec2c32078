package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/esmd-dev/esmd/event"
)

// The file is a log. It starts with a header, and then holds frames, each
// the positions of one group of Saves:
//
//	header: "esmd-checkpoints" (16 bytes), format version (uint32 LE),
//	        CRC-32C of the previous 20 bytes (uint32 LE)
//	frame:  "cpf1", payload length (uint32 LE),
//	        CRC-32C of the length and the payload (uint32 LE), payload
//	payload: entries of uvarint length + mapping name, uvarint length +
//	        shard id, uvarint length + position value (see encoding.go)
//
// A later entry for the same mapping and shard replaces an earlier one. A
// frame's head never crosses a 512-byte boundary: when it would, the frame
// starts at the boundary, after zeros. A sector is written whole or not at
// all, so a head whose magic survived a crash has its length too. The
// bytes after the last frame are zeros: the store writes zeros ahead of the
// log and syncs them, so that appending a frame overwrites blocks the file
// already has and one fdatasync makes it durable without a journal commit.
//
// A crash can leave the frame that was being written torn; its Save had not
// returned. Opening the file drops such a tail. A damaged frame followed by
// a whole one is not a torn tail but damage, and the file is refused.
const (
	headerMagic   = "esmd-checkpoints"
	formatVersion = 1
	headerLen     = len(headerMagic) + 8
	frameMagic    = "cpf1"
	frameHeadLen  = len(frameMagic) + 8
	sector        = 512
)

// headAligned returns where a frame appended at off starts: off, or the
// next sector boundary when its head would cross one.
func headAligned(off int64) int64 {
	if r := off % sector; r > sector-int64(frameHeadLen) {
		return off + sector - r
	}
	return off
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func appendHeader(b []byte) []byte {
	b = append(b, headerMagic...)
	b = binary.LittleEndian.AppendUint32(b, formatVersion)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[len(b)-headerLen+4:], castagnoli))
}

// checkHeader reports whether b starts with a valid header of this format.
func checkHeader(b []byte) error {
	if len(b) < headerLen || string(b[:len(headerMagic)]) != headerMagic {
		return errors.New("no esmd checkpoint header")
	}
	h := b[:headerLen]
	if crc32.Checksum(h[:headerLen-4], castagnoli) != binary.LittleEndian.Uint32(h[headerLen-4:]) {
		return errors.New("damaged header (checksum mismatch)")
	}
	if v := binary.LittleEndian.Uint32(h[len(headerMagic):]); v != formatVersion {
		return fmt.Errorf("file format version %d is unknown (written by a newer esmd?)", v)
	}
	return nil
}

// appendEntry appends one entry to a frame's payload.
func appendEntry(b []byte, mappingName, shard string, val []byte) []byte {
	return append(appendEntryHead(b, mappingName, shard, len(val)), val...)
}

// appendPosition appends the entry of p, encoded, to a frame's payload.
func appendPosition(b []byte, mappingName, shard string, p event.Position) []byte {
	b = appendEntryHead(b, mappingName, shard, encodedLen(p))
	return appendEncoded(b, p)
}

func appendEntryHead(b []byte, mappingName, shard string, valLen int) []byte {
	b = binary.AppendUvarint(b, uint64(len(mappingName)))
	b = append(b, mappingName...)
	b = binary.AppendUvarint(b, uint64(len(shard)))
	b = append(b, shard...)
	return binary.AppendUvarint(b, uint64(valLen))
}

// entryLen is the length appendEntry adds.
func entryLen(mappingName, shard string, valLen int) int {
	return uvarintLen(len(mappingName)) + len(mappingName) + uvarintLen(len(shard)) + len(shard) + uvarintLen(valLen) + valLen
}

func uvarintLen(n int) int {
	l := 1
	for ; n >= 0x80; n >>= 7 {
		l++
	}
	return l
}

// startFrame appends a frame head with room for the length and checksum,
// which finishFrame fills in once the payload follows it.
func startFrame(b []byte) []byte {
	return append(b, frameMagic+"\x00\x00\x00\x00\x00\x00\x00\x00"...)
}

// finishFrame completes the frame that starts at b[start:].
func finishFrame(b []byte, start int) []byte {
	f := b[start:]
	binary.LittleEndian.PutUint32(f[4:], uint32(len(f)-frameHeadLen))
	binary.LittleEndian.PutUint32(f[8:], frameSum(f[4:8], f[frameHeadLen:]))
	return b
}

func frameSum(length, payload []byte) uint32 {
	return crc32.Update(crc32.Checksum(length, castagnoli), castagnoli, payload)
}

// frameAt returns the payload of the whole frame at b[off:] and the offset
// after it, or ok false when there is none.
func frameAt(b []byte, off int) (payload []byte, next int, ok bool) {
	if len(b)-off < frameHeadLen || string(b[off:off+len(frameMagic)]) != frameMagic {
		return nil, off, false
	}
	n := uint64(binary.LittleEndian.Uint32(b[off+4:]))
	if n > uint64(len(b)-off-frameHeadLen) {
		return nil, off, false
	}
	end := off + frameHeadLen + int(n)
	payload = b[off+frameHeadLen : end]
	if frameSum(b[off+4:off+8], payload) != binary.LittleEndian.Uint32(b[off+8:]) {
		return nil, off, false
	}
	return payload, end, true
}

// frameStart returns where the frame after off starts: the next sector
// boundary when the bytes up to it are the zeros that headAligned leaves,
// and off otherwise.
func frameStart(b []byte, off int) int {
	if at := int(headAligned(int64(off))); at != off && at <= len(b) && firstNonZero(b[off:at]) < 0 {
		return at
	}
	return off
}

// scanned is what scan found in a file.
type scanned struct {
	end  int  // offset after the last whole frame: where the next one goes
	torn bool // nonzero bytes follow end: a frame torn by a crash
}

// scan reads the frames of a file whose header was checked, calling apply
// for each entry in order. It stops at the first place that holds no whole
// frame. When nonzero bytes follow and a whole frame is found among them,
// the file is damaged and scan fails.
func scan(b []byte, apply func(mappingName, shard string, val []byte) error) (scanned, error) {
	off := headerLen
	at := frameStart(b, off)
	for {
		payload, next, ok := frameAt(b, at)
		if !ok {
			break
		}
		if err := readEntries(payload, apply); err != nil {
			return scanned{}, fmt.Errorf("frame at byte %d: %w", at, err)
		}
		off = next
		at = frameStart(b, off)
	}
	s := scanned{end: off}
	rest := b[off:]
	if i := firstNonZero(rest); i >= 0 {
		// A whole frame after the damage means that frames that were
		// acknowledged are out of reach: the file is damaged, not torn.
		for j := off + i; j < len(b); j++ {
			k := bytes.Index(b[j:], []byte(frameMagic))
			if k < 0 {
				break
			}
			j += k
			if _, _, ok := frameAt(b, j); ok {
				return scanned{}, fmt.Errorf("damaged frame at byte %d, followed by a whole frame at byte %d", off, j)
			}
		}
		// The torn frame starts at off, or at the next sector boundary
		// after zeros. The file never grows inside a frame's write
		// (File.append), so a frame that the end of the file cuts was cut
		// afterwards.
		head := b[at:]
		if len(head) < frameHeadLen {
			return scanned{}, fmt.Errorf("the file ends inside the frame at byte %d (truncated)", at)
		}
		// A head within one sector is written whole or not at all: when
		// its magic is there, its length is the frame's.
		if string(head[:len(frameMagic)]) == frameMagic {
			n := int64(binary.LittleEndian.Uint32(head[4:]))
			if n > int64(len(head)-frameHeadLen) {
				return scanned{}, fmt.Errorf("the file ends inside the frame at byte %d (truncated)", at)
			}
			// A torn write leaves bytes of its own frame only.
			if firstNonZero(head[int64(frameHeadLen)+n:]) >= 0 {
				return scanned{}, fmt.Errorf("damaged frame at byte %d", at)
			}
		}
		s.torn = true
	}
	return s, nil
}

// readEntries decodes a frame's payload.
func readEntries(p []byte, apply func(mappingName, shard string, val []byte) error) error {
	for len(p) > 0 {
		var field [3][]byte
		for i := range field {
			n, l := binary.Uvarint(p)
			if l <= 0 || n > uint64(len(p)-l) {
				return errors.New("malformed entry")
			}
			field[i], p = p[l:l+int(n)], p[l+int(n):]
		}
		if err := apply(string(field[0]), string(field[1]), field[2]); err != nil {
			return err
		}
	}
	return nil
}

// firstNonZero returns the index of the first nonzero byte of b, or -1.
func firstNonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}
