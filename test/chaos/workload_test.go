package chaos

import "github.com/esmd-dev/esmd/test/workload"

// The workload and the reading of events are shared with the e2e suite
// (test/workload); these names keep both suites' call sites short.
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
