package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/esmd-dev/esmd/event"
)

// errMalformedResponse marks a partial batch response that fails the whole
// batch, as Lambda treats it.
var errMalformedResponse = errors.New("malformed partial batch response")

// partialResponse is the function's answer with ReportBatchItemFailures on.
type partialResponse struct {
	BatchItemFailures []json.RawMessage `json:"batchItemFailures"`
}

type batchItemFailure struct {
	ItemIdentifier *string `json:"itemIdentifier"`
}

// firstFailed reads a partial batch response to recs; see FirstFailed.
func firstFailed(body []byte, recs []event.Record) (int, error) {
	return FirstFailed(body, len(recs), func(i int) string { return recs[i].ID })
}

// FirstFailed reads a partial batch response to a batch of n records, whose
// itemIdentifiers id gives, and returns the index of the first record to
// retry, or n when the whole batch succeeded. The engine applies it to
// every response of a mapping with ReportBatchItemFailures; esmd bench
// applies it too, to count what the function reported failed.
//
// As Lambda does, an empty or null body, a body that is not a JSON object
// (handlers may return strings), and an empty or null batchItemFailures list
// all mean success. An itemIdentifier that is null, empty, misspelled or not
// in the batch fails the whole batch (index 0 and an error wrapping
// errMalformedResponse). Lambda never passes on a body that is not JSON;
// esmd's functions can, so invalid JSON also fails the whole batch rather than
// risk dropping records. The identifiers are sequence numbers for streams
// and message ids for SQS; the lowest position named wins.
func FirstFailed(body []byte, n int, id func(i int) string) (int, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		if len(body) > 0 && !json.Valid(body) {
			return 0, fmt.Errorf("%w: response is not JSON", errMalformedResponse)
		}
		return n, nil
	}
	var resp partialResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return 0, fmt.Errorf("%w: %v", errMalformedResponse, err)
	}
	if len(resp.BatchItemFailures) == 0 {
		return n, nil
	}
	ids := make(map[string]struct{}, len(resp.BatchItemFailures))
	for _, raw := range resp.BatchItemFailures {
		var f batchItemFailure
		if err := json.Unmarshal(raw, &f); err != nil {
			return 0, fmt.Errorf("%w: batchItemFailures entry %s: %v", errMalformedResponse, raw, err)
		}
		if f.ItemIdentifier == nil || *f.ItemIdentifier == "" {
			return 0, fmt.Errorf("%w: batchItemFailures entry %s has no itemIdentifier", errMalformedResponse, raw)
		}
		ids[*f.ItemIdentifier] = struct{}{}
	}
	first := -1
	for i := range n {
		if _, ok := ids[id(i)]; ok {
			if first < 0 {
				first = i
			}
			delete(ids, id(i))
		}
	}
	for missing := range ids {
		return 0, fmt.Errorf("%w: itemIdentifier %q is not in the batch", errMalformedResponse, missing)
	}
	return first, nil
}
