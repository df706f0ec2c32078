package kinesis

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkScanRecords measures reading the Records array of a GetRecords
// response of 1,000 records of 100 bytes, as kinesalite writes it.
func BenchmarkScanRecords(b *testing.B) {
	const n = 1000
	var sb strings.Builder
	sb.WriteString(`[`)
	data := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("abcdefghij", 10)))
	for i := range n {
		if i > 0 {
			sb.WriteString(",")
		}
		fmt.Fprintf(&sb, `{"PartitionKey":"%x","Data":"%s","SequenceNumber":"49590338271490256608559692538361571095921575989136%06d","ApproximateArrivalTimestamp":1700000000.123}`, i*7919, data, i)
	}
	sb.WriteString(`]`)
	body := []byte(sb.String())
	var p recordsProtocol
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		p.spans = p.spans[:0]
		sc := scanner{b: body}
		if err := p.scanRecords(&sc); err != nil || len(p.spans) != n {
			b.Fatal(err, len(p.spans))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/record")
}
