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

// firstFailed reads a partial batch response and returns the index in recs of
// the first record to retry, or len(recs) when the whole batch succeeded.
//
// As Lambda does, an empty or null body, a body that is not a JSON object
// (handlers may return strings), and an empty or null batchItemFailures list
// all mean success. An itemIdentifier that is null, empty, misspelled or not
// in the batch fails the whole batch (index 0 and an error wrapping
// errMalformedResponse). Lambda never passes on a body that is not JSON;
// esmd's functions can, so invalid JSON also fails the whole batch rather than
// risk dropping records. The identifiers are sequence numbers for streams
// and message ids for SQS; the lowest position named wins.
func firstFailed(body []byte, recs []event.Record) (int, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		if len(body) > 0 && !json.Valid(body) {
			return 0, fmt.Errorf("%w: response is not JSON", errMalformedResponse)
		}
		return len(recs), nil
	}
	var resp partialResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return 0, fmt.Errorf("%w: %v", errMalformedResponse, err)
	}
	if len(resp.BatchItemFailures) == 0 {
		return len(recs), nil
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
	for i := range recs {
		if _, ok := ids[recs[i].ID]; ok {
			if first < 0 {
				first = i
			}
			delete(ids, recs[i].ID)
		}
	}
	if len(ids) > 0 {
		for id := range ids {
			return 0, fmt.Errorf("%w: itemIdentifier %q is not in the batch", errMalformedResponse, id)
		}
	}
	return first, nil
}
