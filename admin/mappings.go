package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// View is one mapping as /mappings renders it: AWS's
// EventSourceMappingConfiguration fields, the effective settings (in
// Settings when decoded) and esmd's own detail under "Esmd".
type View struct {
	UUID                  string
	EventSourceMappingArn string `json:",omitempty"`
	EventSourceArn        string
	FunctionArn           string
	State                 string
	StateTransitionReason string
	LastProcessingResult  string
	// LastModified is in Unix seconds, with milliseconds.
	LastModified float64
	Esmd         Detail
	// Settings holds every other property (BatchSize, ...), as decoded
	// from JSON.
	Settings map[string]any `json:"-"`
}

// Detail is what esmd adds to AWS's shape.
type Detail struct {
	Name           string
	SourceType     string
	Healthy        bool
	ShardsFinished int          `json:",omitempty"`
	Shards         []ShardView  `json:",omitempty"`
	Pollers        *int64       `json:",omitempty"`
	Stats          *StatsDetail `json:",omitempty"`
}

// ShardView is one running shard.
type ShardView struct {
	ShardId                 string //nolint:revive // AWS's spelling
	Checkpoint              string `json:",omitempty"`
	PendingRecords          int64
	IteratorAgeMilliseconds int64
	ReadFailing             bool `json:",omitempty"`
}

// StatsDetail are a few totals, for `esmd status`.
type StatsDetail struct {
	PolledEvents       int64
	InvokedEvents      int64
	FailedInvokeEvents int64
	DroppedEvents      int64 `json:",omitempty"`
	DeletedEvents      int64 `json:",omitempty"`
}

// coreKeys are the fields View decodes itself; the rest go to Settings.
var coreKeys = map[string]bool{
	"UUID": true, "EventSourceMappingArn": true, "EventSourceArn": true, "FunctionArn": true, "State": true,
	"StateTransitionReason": true, "LastProcessingResult": true, "LastModified": true, "Esmd": true,
}

// UnmarshalJSON decodes the known fields and keeps the others in Settings.
func (v *View) UnmarshalJSON(b []byte) error {
	type plain View
	if err := json.Unmarshal(b, (*plain)(v)); err != nil {
		return err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for k := range coreKeys {
		delete(all, k)
	}
	v.Settings = all
	return nil
}

// render builds the JSON object of m: its settings, then AWS's fields and
// esmd's detail over them.
func render(m *Mapping) map[string]any {
	out := make(map[string]any, len(m.Settings)+10)
	for k, v := range m.Settings {
		if !coreKeys[k] {
			out[k] = v
		}
	}
	st := m.status()
	out["UUID"] = m.UUID
	if arn := esmArn(m.FunctionArn, m.UUID); arn != "" {
		out["EventSourceMappingArn"] = arn
	}
	out["EventSourceArn"] = m.EventSourceArn
	out["FunctionArn"] = m.FunctionArn
	out["State"] = st.State
	out["StateTransitionReason"] = st.StateTransitionReason
	out["LastProcessingResult"] = st.LastProcessingResult
	if !m.LastModified.IsZero() {
		out["LastModified"] = epochSeconds(m.LastModified)
	}
	d := Detail{Name: m.Name, SourceType: m.SourceKind, Healthy: st.Healthy, ShardsFinished: st.ShardsFinished}
	for _, sh := range st.Shards {
		d.Shards = append(d.Shards, ShardView{
			ShardId: sh.ID, Checkpoint: sh.Checkpoint, PendingRecords: sh.Pending,
			IteratorAgeMilliseconds: sh.IteratorAgeMillis, ReadFailing: sh.ReadFailing,
		})
	}
	s := m.Stats
	if s == nil && m.SQS != nil {
		s = &m.SQS.Stats
	}
	if s != nil {
		d.Stats = &StatsDetail{
			PolledEvents: s.PolledEvents.Load(), InvokedEvents: s.InvokedEvents.Load(),
			FailedInvokeEvents: s.FailedInvokeEvents.Load(), DroppedEvents: s.DroppedEvents.Load(),
		}
	}
	if m.SQS != nil {
		n := m.SQS.Concurrency.Load()
		d.Pollers = &n
		d.Stats.DeletedEvents = m.SQS.DeletedEvents.Load()
	}
	out["Esmd"] = d
	return out
}

// esmArn is the mapping's ARN in the function's partition, region and
// account, as AWS names it: arn:aws:lambda:REGION:ACCOUNT:event-source-mapping:UUID.
func esmArn(functionArn, uuid string) string {
	parts := strings.SplitN(functionArn, ":", 6)
	if len(parts) < 6 || parts[0] != "arn" || uuid == "" {
		return ""
	}
	return strings.Join(append(parts[:5:5], "event-source-mapping:"+uuid), ":")
}

// ErrUnreachable wraps the error of a request that got no HTTP answer.
var ErrUnreachable = errors.New("esmd is not reachable")

// List fetches /mappings from the esmd at baseURL (http://host:port) with
// hc, sending token as a bearer token when it is set. It returns an error
// wrapping ErrUnreachable when no HTTP answer comes, within ctx.
func List(ctx context.Context, hc *http.Client, baseURL, token string) ([]View, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+"/mappings", nil)
	if err != nil {
		return nil, fmt.Errorf("list mappings: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list mappings: %w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("list mappings: read: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e apiError
		_ = json.Unmarshal(body, &e)
		if e.Message == "" {
			e.Message = strings.TrimSpace(string(body))
		}
		return nil, fmt.Errorf("list mappings: %s: %s", resp.Status, e.Message)
	}
	var out struct{ EventSourceMappings []View }
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("list mappings: decode: %w", err)
	}
	return out.EventSourceMappings, nil
}
