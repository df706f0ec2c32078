package generator

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// segment is a literal part of a template, or a placeholder.
type segment struct {
	lit string
	ph  string // key, n, t, poison, pad, seq, shard; "" for a literal
}

var placeholders = []string{"key", "n", "t", "poison", "pad", "seq", "shard"}

// parseTemplate splits a template at its {{placeholders}}; unknown
// placeholders stay literal.
func parseTemplate(t string) []segment {
	var out []segment
	lit := ""
	for len(t) > 0 {
		i := strings.Index(t, "{{")
		if i < 0 {
			lit += t
			break
		}
		lit += t[:i]
		t = t[i:]
		j := strings.Index(t, "}}")
		if j < 0 {
			lit += t
			break
		}
		name := t[2:j]
		known := false
		for _, p := range placeholders {
			known = known || p == name
		}
		if !known {
			lit += t[:j+2]
			t = t[j+2:]
			continue
		}
		if lit != "" {
			out = append(out, segment{lit: lit})
			lit = ""
		}
		out = append(out, segment{ph: name})
		t = t[j+2:]
	}
	if lit != "" {
		out = append(out, segment{lit: lit})
	}
	return out
}

// appendTemplate renders the template for one record. {{pad}} fills the
// data up to Size, counting the template's other parts.
func (s *Source) appendTemplate(b []byte, sh *shardPlan, key int, n int64, at time.Time, nanos *nanosText, poison bool, seq string, off int) ([]byte, padding) {
	start := len(b)
	padAt := -1
	for _, sg := range s.tmpl {
		switch sg.ph {
		case "":
			b = append(b, sg.lit...)
		case "key":
			b = append(b, s.keyNames[key]...)
		case "n":
			b = strconv.AppendInt(b, n, 10)
		case "t":
			b = nanos.append(b, at)
		case "poison":
			b = strconv.AppendBool(b, poison)
		case "seq":
			b = append(b, seq...)
		case "shard":
			b = append(b, sh.id...)
		case "pad":
			padAt = len(b)
		}
	}
	var pad padding
	if padAt >= 0 {
		if padLen := s.spec.Size - (len(b) - start); padLen > 0 {
			b = append(b, s.pad[off:off+padLen]...)
			copy(b[padAt+padLen:], b[padAt:len(b)-padLen])
			copy(b[padAt:], s.pad[off:off+padLen])
			pad = padding{at: padAt - start, n: padLen, off: off}
		}
	}
	return b, pad
}

// Data is what a generated record's data says about itself.
type Data struct {
	// Key is the partition key, N its per-key sequence number (from 1).
	Key string
	N   int64
	// Generated is when the record was generated.
	Generated time.Time
	Poison    bool
}

// ParseData reads the fields of a generated record's JSON data ("k", "n",
// "t", "poison"), in any order; ok is false when "k" or "n" is missing.
// It does not allocate beyond the key string.
func ParseData(d []byte) (Data, bool) {
	var out Data
	kv, ok := field(d, `"k":"`)
	if !ok {
		return out, false
	}
	end := bytes.IndexByte(kv, '"')
	if end < 0 {
		return out, false
	}
	out.Key = string(kv[:end])
	nv, ok := field(d, `"n":`)
	if !ok {
		return out, false
	}
	out.N, ok = leadingInt(nv)
	if !ok {
		return out, false
	}
	if tv, ok := field(d, `"t":`); ok {
		if t, ok := leadingInt(tv); ok {
			out.Generated = time.Unix(0, t)
		}
	}
	if pv, ok := field(d, `"poison":`); ok {
		out.Poison = bytes.HasPrefix(pv, []byte("true"))
	}
	return out, true
}

func field(d []byte, name string) ([]byte, bool) {
	i := bytes.Index(d, []byte(name))
	if i < 0 {
		return nil, false
	}
	return d[i+len(name):], true
}

func leadingInt(b []byte) (int64, bool) {
	var v int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		v = v*10 + int64(b[i]-'0')
	}
	return v, i > 0
}

// ScanEvent calls fn with the data of every record of a Lambda event of
// generated records, Kinesis-, DynamoDB- or SQS-shaped, in order. Kinesis
// data is base64-decoded into a buffer that fn must not keep; an SQS record's
// data is its body as it stands (base64 text for payload=random).
func ScanEvent(payload []byte, fn func(data []byte)) error {
	return ScanRecords(payload, func(r EventRecord) { fn(r.Data) })
}

// EventRecord is one record of a Lambda event of generated records, as
// ScanRecords reads it back. Its slices are valid only during the call it
// is passed to.
type EventRecord struct {
	// ID is the record's itemIdentifier in a partial batch response: its
	// sequence number, or its messageId when SQS-shaped.
	ID []byte
	// Shard and N name the record, whatever its data: the index of its
	// shard and its number there, from 1, as ParseSeq reads them from its
	// sequence number. N is 0 when the record has no generator's sequence
	// number.
	Shard int
	N     int64
	// Data is the record's data, as ScanEvent gives it.
	Data []byte
}

// ScanRecords calls fn with every record of a Lambda event of generated
// records, Kinesis-, DynamoDB- or SQS-shaped, in order. An SQS record's
// sequence number is read from its receipt handle, which names it.
func ScanRecords(payload []byte, fn func(r EventRecord)) error {
	if bytes.Contains(payload, []byte(`"eventSource":"aws:sqs"`)) {
		var ev struct {
			Records []struct {
				MessageID     string `json:"messageId"`
				ReceiptHandle string `json:"receiptHandle"`
				Body          string `json:"body"`
			} `json:"Records"`
		}
		if err := json.Unmarshal(payload, &ev); err != nil {
			return fmt.Errorf("generator: scan event: %w", err)
		}
		for _, r := range ev.Records {
			er := EventRecord{ID: []byte(r.MessageID), Data: []byte(r.Body)}
			// NAME/SHARD/SEQ/MESSAGEID: see encodeSQS.
			if h, err := base64.StdEncoding.DecodeString(r.ReceiptHandle); err == nil {
				if parts := bytes.Split(h, []byte("/")); len(parts) == 4 {
					er.Shard, er.N, _ = parseSeq(parts[2])
				}
			}
			fn(er)
		}
		return nil
	}
	if bytes.Contains(payload, []byte(`"aws:dynamodb"`)) {
		var ev struct {
			Records []struct {
				DynamoDB struct {
					SequenceNumber string `json:"SequenceNumber"`
					NewImage       struct {
						Data struct {
							S string `json:"S"`
						} `json:"data"`
					} `json:"NewImage"`
				} `json:"dynamodb"`
			} `json:"Records"`
		}
		if err := json.Unmarshal(payload, &ev); err != nil {
			return fmt.Errorf("generator: scan event: %w", err)
		}
		for _, r := range ev.Records {
			d := &r.DynamoDB
			er := EventRecord{ID: []byte(d.SequenceNumber), Data: []byte(d.NewImage.Data.S)}
			er.Shard, er.N, _ = parseSeq(d.SequenceNumber)
			fn(er)
		}
		return nil
	}
	// Kinesis: each record's "sequenceNumber" comes before its "data"
	// (see event.KinesisEncoder); neither marker can occur inside a JSON
	// string, whose quotes are escaped.
	const kin, kseq = `"data":"`, `"sequenceNumber":"`
	var buf []byte
	rest := payload
	for {
		i := bytes.Index(rest, []byte(kin))
		if i < 0 {
			return nil
		}
		var er EventRecord
		if s := bytes.LastIndex(rest[:i], []byte(kseq)); s >= 0 {
			seq := rest[s+len(kseq) : i]
			if end := bytes.IndexByte(seq, '"'); end >= 0 {
				er.ID = seq[:end]
				er.Shard, er.N, _ = parseSeq(er.ID)
			}
		}
		rest = rest[i+len(kin):]
		end := bytes.IndexByte(rest, '"')
		if end < 0 {
			return errors.New("generator: scan event: unterminated data")
		}
		var err error
		buf, err = base64.StdEncoding.AppendDecode(buf[:0], rest[:end])
		if err != nil {
			return fmt.Errorf("generator: scan event: %w", err)
		}
		er.Data = buf
		fn(er)
		rest = rest[end:]
	}
}

// ParseDataOf parses the data of one generated record (see ParseData); it
// returns the zero Data when the record holds none.
func ParseDataOf(r event.Record) Data {
	var d Data
	_ = ScanEvent(event.AppendEvent(nil, []event.Record{r}), func(b []byte) { d, _ = ParseData(b) })
	return d
}
