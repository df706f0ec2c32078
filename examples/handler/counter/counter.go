// Package counter is the example handler's logic: an http.Handler that
// takes Lambda batch events of generated records (see pollers/generator),
// counts what it sees, and fails every batch that holds a poison record.
// It is a package of its own so that tests can run it in process.
package counter

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/esmd-dev/esmd/pollers/generator"
)

// Stats is what the handler has seen. Records counts every record of every
// batch, repeats included; Unique counts distinct (key, n) pairs; Duplicates
// counts records seen before (Records - Unique).
type Stats struct {
	Batches       int64 `json:"batches"`
	FailedBatches int64 `json:"failed_batches"`
	Records       int64 `json:"records"`
	Unique        int64 `json:"unique"`
	Duplicates    int64 `json:"duplicates"`
	// Poison counts distinct poison records seen.
	Poison int64 `json:"poison"`
	// Unparsed counts records whose data is not a generated record's.
	Unparsed int64 `json:"unparsed"`
}

// Handler counts records and answers esmd's HTTP function calls. It is safe
// for concurrent use.
type Handler struct {
	// FailPoison makes a batch with a poison record fail (HTTP 500 with
	// Lambda's error body), so that esmd retries and bisects it.
	FailPoison bool
	// Logger gets one line per batch; discarded when nil.
	Logger *slog.Logger
	// OnUnique, when set, is called with the counts each time the number
	// of distinct records grows. It runs under the handler's lock: it must
	// not call the handler.
	OnUnique func(s Stats)

	mu    sync.Mutex
	seen  map[string][]uint64 // key -> bitset of n seen
	stats Stats
	// poison holds the poison records seen, by key and n.
	poison map[string]map[int64]bool
}

// ServeHTTP serves POST / (a batch event) and GET /stats (the counts as
// JSON).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && r.URL.Path == "/stats" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(h.Stats())
		return
	}
	if r.Method != http.MethodPost {
		http.Error(w, "POST a Lambda event, or GET /stats", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := h.Process(body); err != nil {
		var fe *Error
		errors.As(err, &fe)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(fe)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"batchItemFailures":[]}`)
}

// Error is a failed batch, as Lambda's error body writes it.
type Error struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// Process takes one batch event: it counts its records and logs the batch.
// It returns an *Error when the event is not one of generated records, or
// when it holds a poison record and FailPoison is set: a function error,
// which esmd retries and bisects.
func (h *Handler) Process(event []byte) error {
	n, first, last, poison, err := h.Take(event)
	if err != nil {
		return &Error{Type: "BadEvent", Message: err.Error()}
	}
	log := h.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if poison != "" && h.FailPoison {
		log.Warn("batch failed: poison record", "records", n, "poison", poison)
		h.mu.Lock()
		h.stats.FailedBatches++
		h.mu.Unlock()
		return &Error{Type: "PoisonRecord", Message: "poison record " + poison}
	}
	log.Info("batch processed", "records", n, "first", first, "last", last)
	return nil
}

// Take counts the records of one event and returns how many it held, the
// first and last as key#n, and the first poison record (empty if none).
func (h *Handler) Take(event []byte) (n int, first, last, poison string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string][]uint64{}
		h.poison = map[string]map[int64]bool{}
	}
	h.stats.Batches++
	before := h.stats.Unique
	err = generator.ScanEvent(event, func(b []byte) {
		n++
		h.stats.Records++
		d, ok := generator.ParseData(b)
		if !ok || d.N < 1 {
			h.stats.Unparsed++
			return
		}
		id := fmt.Sprintf("%s#%d", d.Key, d.N)
		if first == "" {
			first = id
		}
		last = id
		if d.Poison {
			if poison == "" {
				poison = id
			}
			if h.poison[d.Key] == nil {
				h.poison[d.Key] = map[int64]bool{}
			}
			if !h.poison[d.Key][d.N] {
				h.poison[d.Key][d.N] = true
				h.stats.Poison++
			}
		}
		bits := h.seen[d.Key]
		word, bit := int(d.N/64), uint64(1)<<(d.N%64)
		for len(bits) <= word {
			bits = append(bits, 0)
		}
		if bits[word]&bit != 0 {
			h.stats.Duplicates++
		} else {
			bits[word] |= bit
			h.stats.Unique++
		}
		h.seen[d.Key] = bits
	})
	if h.OnUnique != nil && h.stats.Unique != before {
		h.OnUnique(h.stats)
	}
	return n, first, last, poison, err
}

// Stats returns a copy of the counts.
func (h *Handler) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}
