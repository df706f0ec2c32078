package efoshim

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

func TestInitialResponseDecodes(t *testing.T) {
	msg, err := eventstream.NewDecoder().Decode(bytes.NewReader(InitialResponse()), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{":message-type": "event", ":event-type": "initial-response", ":content-type": "application/json"}
	if len(msg.Headers) != len(want) {
		t.Errorf("%d headers, want %d", len(msg.Headers), len(want))
	}
	for name, v := range want {
		if got := msg.Headers.Get(name); got == nil || got.String() != v {
			t.Errorf("header %s = %v, want %s", name, got, v)
		}
	}
	if string(msg.Payload) != "{}" {
		t.Errorf("payload %q", msg.Payload)
	}
}

func TestProxy(t *testing.T) {
	upstream := http.NewServeMux()
	upstream.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		io.WriteString(w, "EVENTS")
	})
	upstream.HandleFunc("/json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		io.WriteString(w, `{"ok":true}`)
	})
	upstream.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "bad")
	})
	up := httptestServer(t, upstream)
	ep := Start(t, up)
	tests := []struct {
		path   string
		status int
		body   []byte
	}{
		{"/stream", 200, append(InitialResponse(), "EVENTS"...)},
		{"/json", 200, []byte(`{"ok":true}`)},
		{"/fail", 400, []byte("bad")},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Post(ep+tt.path, "application/json", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || !bytes.Equal(body, tt.body) {
				t.Errorf("got %d %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
		})
	}
}
func httptestServer(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL
}
