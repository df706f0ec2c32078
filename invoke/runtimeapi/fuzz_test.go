package runtimeapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// FuzzServeHTTP sends arbitrary requests to one process's Runtime API. The
// API must never panic, must answer with one of the Runtime API's statuses,
// and must end the invocation in progress only through its own request id.
func FuzzServeHTTP(f *testing.F) {
	f.Add("GET", "/2018-06-01/runtime/invocation/next", "", false)
	f.Add("POST", "/2018-06-01/runtime/invocation/req-1/response", `{"ok":true}`, true)
	f.Add("POST", "/2018-06-01/runtime/invocation/req-1/error", `{"errorMessage":"boom","errorType":"E"}`, true)
	f.Add("POST", "/2018-06-01/runtime/invocation/other/response", `{}`, true)
	f.Add("POST", "/2018-06-01/runtime/init/error", `not json`, false)
	f.Add("DELETE", "/2018-06-01/runtime/invocation/req-1/response", ``, true)
	f.Add("POST", "/2018-06-01/runtime/invocation//response", ``, true)
	f.Fuzz(func(t *testing.T, method, path, body string, inProgress bool) {
		req, err := http.NewRequest(method, "http://127.0.0.1"+path, strings.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		inv := &Invoker{cfg: Config{Name: "f", Timeout: time.Second}, log: slog.New(slog.DiscardHandler),
			jobs: make(chan *call), closing: make(chan struct{})}
		close(inv.closing) // a GET next returns at once instead of waiting
		s := &slot{inv: inv, log: inv.log, alive: true}
		c := &call{id: "req-1", done: make(chan struct{})}
		if inProgress {
			s.cur, s.curEnd, s.curAllow = c, time.Now().Add(time.Hour), time.Hour
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK, http.StatusAccepted, http.StatusBadRequest, http.StatusForbidden,
			http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("%s %s: status %d", method, path, rec.Code)
		}
		select {
		case <-c.done:
			ours := req.Method == http.MethodPost && (req.URL.Path == apiPrefix+"invocation/req-1/response" ||
				req.URL.Path == apiPrefix+"invocation/req-1/error")
			if !inProgress || !ours {
				t.Fatalf("%s %s ended the invocation req-1", method, path)
			}
			if rec.Code != http.StatusAccepted {
				t.Fatalf("%s %s ended req-1 but answered %d", method, path, rec.Code)
			}
		default:
		}
	})
}
