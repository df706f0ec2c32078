package e2e

import "github.com/esmd-dev/esmd/test/workload"

// The workload and the reading of events are shared with the chaos suite.
type (
	put = workload.Put
	rec = workload.Rec
)

var (
	keyedRecords = workload.Keyed
	putRecords   = workload.PutRecords
	putItems     = workload.PutItems
	decodeRecs   = workload.Decode
)
