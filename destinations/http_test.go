package destinations

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHTTPSend(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusAccepted)
	type req struct {
		method, ctype, user, pass string
		body                      []byte
	}
	got := make(chan req, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u, p, _ := r.BasicAuth()
		got <- req{r.Method, r.Header.Get("Content-Type"), u, p, b}
		w.WriteHeader(int(status.Load()))
		_, _ = io.WriteString(w, "busy\n")
	}))
	defer srv.Close()
	target := strings.Replace(srv.URL, "http://", "http://esmd:s3cret@", 1) + "/failures"
	d, err := NewHTTP(target, srv.Client(), nil)
	if err != nil {
		t.Fatal(err)
	}

	if err := d.Send(t.Context(), testFailure()); err != nil {
		t.Fatalf("Send with status 202: %v", err)
	}
	r := <-got
	want := req{http.MethodPost, "application/json", "esmd", "s3cret", goldenBytes(t, "kinesis_failure.golden.json")}
	if diff := cmp.Diff(want, r, cmp.AllowUnexported(req{})); diff != "" {
		t.Errorf("request (-want +got):\n%s", diff)
	}

	for _, code := range []int{http.StatusMovedPermanently, http.StatusBadRequest, http.StatusTooManyRequests, http.StatusInternalServerError} {
		status.Store(int32(code))
		err := d.Send(t.Context(), testFailure())
		<-got
		if err == nil || isPermanent(err) {
			t.Errorf("status %d: Send = %v, want a transient error", code, err)
			continue
		}
		if !strings.HasSuffix(err.Error(), fmt.Sprintf(": post: status %d: \"busy\"", code)) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("status %d: error %q", code, err)
		}
	}
}

func TestHTTPConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	d, err := NewHTTP("http://esmd:s3cret@"+addr+"/x", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Send(t.Context(), testFailure())
	var op *net.OpError
	if !errors.As(err, &op) || isPermanent(err) {
		t.Fatalf("Send = %v, want a transient dial error", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error shows the password: %v", err)
	}
	if !strings.HasPrefix(err.Error(), "destination http http://esmd:xxxxx@"+addr+"/x: post: ") {
		t.Errorf("error %q lacks the redacted destination prefix", err)
	}
}
