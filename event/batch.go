package event

// eventHead and eventTail frame the records of every Lambda batch event.
const (
	eventHead = `{"Records":[`
	eventTail = `]}`
)

// Overhead is the number of bytes an event adds around its records when it
// holds none.
const Overhead = len(eventHead) + len(eventTail)

// EventSize is the exact size in bytes of the event that AppendEvent builds
// from recs.
func EventSize(recs []Record) int {
	n := Overhead
	for i := range recs {
		n += recs[i].Size()
	}
	if len(recs) > 1 {
		n += len(recs) - 1
	}
	return n
}

// AddedSize is how many bytes one more record of JSON size n adds to an event
// that already holds count records.
func AddedSize(count, n int) int {
	if count == 0 {
		return n
	}
	return n + 1
}

// AppendEvent appends the Lambda event {"Records":[...]} holding recs to dst
// and returns the extended slice. The records' pre-encoded JSON is copied as
// is.
func AppendEvent(dst []byte, recs []Record) []byte {
	dst = append(dst, eventHead...)
	var last arrivalText
	for i := range recs {
		if i > 0 {
			dst = append(dst, ',')
		}
		if k := recs[i].kinesis; k != nil {
			dst = k.append(dst, &recs[i], &last)
		} else {
			dst = append(dst, recs[i].JSON...)
		}
	}
	return append(dst, eventTail...)
}
