package lambdafunc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/mapping"
)

// fakeLambda serves the Invoke API route with h, recording the paths asked.
func fakeLambda(t *testing.T, h http.HandlerFunc) (*lambda.Client, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.RequestURI())
		mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	c := lambda.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "secret", ""),
		HTTPClient:   srv.Client(),
		BaseEndpoint: aws.String(srv.URL),
	})
	return c, &paths
}

func request() *mapping.Request {
	return &mapping.Request{Payload: []byte(`{"Records":[]}`), RequestID: "r1", Mapping: "m", Attempt: 1}
}

func TestOutcomes(t *testing.T) {
	type want struct {
		resp     *mapping.Response
		fe       *mapping.FunctionError
		throttle time.Duration // RetryAfter of an expected throttle, -1 for none
		other    string
	}
	tests := []struct {
		name string
		rie  bool
		h    http.HandlerFunc
		want want
	}{
		{
			name: "success with executed version",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Amz-Executed-Version", "7")
				io.WriteString(w, `{"batchItemFailures":[{"itemIdentifier":"1"}]}`)
			},
			want: want{resp: &mapping.Response{Body: []byte(`{"batchItemFailures":[{"itemIdentifier":"1"}]}`), StatusCode: 200, ExecutedVersion: "7"}, throttle: -1},
		},
		{
			name: "handled function error",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Amz-Function-Error", "Handled")
				w.Header().Set("X-Amz-Executed-Version", "3")
				io.WriteString(w, `{"errorType":"ValueError","errorMessage":"bad record","stackTrace":[]}`)
			},
			want: want{fe: &mapping.FunctionError{Kind: "Handled", Type: "ValueError", Message: "bad record", StatusCode: 200, ExecutedVersion: "3"}, throttle: -1},
		},
		{
			name: "Lambda's timeout",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Amz-Function-Error", "Unhandled")
				io.WriteString(w, `{"errorType":"Sandbox.Timedout","errorMessage":"RequestId: x Error: Task timed out after 3.00 seconds"}`)
			},
			want: want{fe: &mapping.FunctionError{Kind: "Unhandled", Type: "Sandbox.Timedout", Message: "RequestId: x Error: Task timed out after 3.00 seconds", StatusCode: 200, Timeout: true}, throttle: -1},
		},
		{
			name: "throttle with RetryAfterSeconds",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Amzn-ErrorType", "TooManyRequestsException")
				w.Header().Set("Retry-After", "7")
				w.WriteHeader(429)
				io.WriteString(w, `{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","message":"Rate exceeded","retryAfterSeconds":"7"}`)
			},
			want: want{throttle: 7 * time.Second},
		},
		{
			name: "throttle with Retry-After only",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Amzn-ErrorType", "TooManyRequestsException")
				w.Header().Set("Retry-After", "3")
				w.WriteHeader(429)
				io.WriteString(w, `{"message":"Rate exceeded"}`)
			},
			want: want{throttle: 3 * time.Second},
		},
		{
			name: "throttle without a delay",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Amzn-ErrorType", "TooManyRequestsException")
				w.WriteHeader(429)
				io.WriteString(w, `{"message":"Rate exceeded"}`)
			},
			want: want{throttle: 0},
		},
		{
			name: "not found is invoke-side",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
				w.WriteHeader(404)
				io.WriteString(w, `{"message":"Function not found"}`)
			},
			want: want{other: "ResourceNotFoundException", throttle: -1},
		},
		{
			name: "a 200 error body is a success without RIE compatibility",
			h: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"errorMessage":"boom","errorType":"errorString"}`)
			},
			want: want{resp: &mapping.Response{Body: []byte(`{"errorMessage":"boom","errorType":"errorString"}`), StatusCode: 200}, throttle: -1},
		},
		{
			name: "RIE: a 200 error body is a function error",
			rie:  true,
			h: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"errorMessage":"boom","errorType":"errorString"}`)
			},
			want: want{fe: &mapping.FunctionError{Kind: "Unhandled", Type: "errorString", Message: "boom", StatusCode: 200}, throttle: -1},
		},
		{
			name: "RIE: a 502 is a function error",
			rie:  true,
			h: func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(502)
				io.WriteString(w, `{"errorMessage":"oh no","errorType":"string","stackTrace":[]}`)
			},
			want: want{fe: &mapping.FunctionError{Kind: "Unhandled", Type: "string", Message: "oh no", StatusCode: 200}, throttle: -1},
		},
		{
			name: "RIE: a timeout text is a timeout",
			rie:  true,
			h: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `Task timed out after 5.00 seconds`)
			},
			want: want{fe: &mapping.FunctionError{Kind: "Unhandled", Type: "Sandbox.Timedout", Message: "Task timed out after 5.00 seconds", StatusCode: 200, Timeout: true}, throttle: -1},
		},
		{
			name: "RIE: an ordinary body passes",
			rie:  true,
			h: func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, `{"errorMessage":"x","other":1}`)
			},
			want: want{resp: &mapping.Response{Body: []byte(`{"errorMessage":"x","other":1}`), StatusCode: 200}, throttle: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := fakeLambda(t, tt.h)
			inv, err := New(c, Config{FunctionName: "orders", RIECompat: tt.rie})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := inv.Invoke(t.Context(), request())
			var fe *mapping.FunctionError
			var te *mapping.ThrottleError
			switch {
			case tt.want.resp != nil:
				if err != nil {
					t.Fatalf("Invoke: %v", err)
				}
				if d := cmp.Diff(tt.want.resp, resp); d != "" {
					t.Errorf("response (-want +got):\n%s", d)
				}
			case tt.want.fe != nil:
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v (%T), want a function error", err, err)
				}
				if d := cmp.Diff(tt.want.fe, fe); d != "" {
					t.Errorf("function error (-want +got):\n%s", d)
				}
			case tt.want.throttle >= 0:
				if !errors.As(err, &te) {
					t.Fatalf("err = %v (%T), want a throttle", err, err)
				}
				if te.RetryAfter != tt.want.throttle {
					t.Errorf("RetryAfter = %s, want %s", te.RetryAfter, tt.want.throttle)
				}
			default:
				if err == nil || errors.As(err, &fe) || errors.As(err, &te) || !strings.Contains(err.Error(), tt.want.other) {
					t.Errorf("err = %v, want an invoke-side error with %q", err, tt.want.other)
				}
			}
		})
	}
}

func TestNameQualifierAndNoSDKRetries(t *testing.T) {
	var calls atomic.Int32
	c, paths := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(500)
		io.WriteString(w, `{"message":"internal"}`)
	})
	inv, err := New(c, Config{FunctionName: "arn:aws:lambda:us-east-1:123456789012:function:orders", Qualifier: "live"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inv.Invoke(t.Context(), request()); err == nil {
		t.Fatal("a 500: no error")
	}
	if calls.Load() != 1 {
		t.Errorf("%d calls, want 1: the SDK must not retry", calls.Load())
	}
	want := []string{"/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aorders/invocations?Qualifier=live"}
	if d := cmp.Diff(want, *paths); d != "" {
		t.Errorf("paths (-want +got):\n%s", d)
	}

	rie, err := New(c, Config{FunctionName: "arn:aws:lambda:us-east-1:123456789012:function:orders", Qualifier: "live", RIECompat: true})
	if err != nil {
		t.Fatal(err)
	}
	*paths = nil
	_, _ = rie.Invoke(t.Context(), request())
	if d := cmp.Diff([]string{"/2015-03-31/functions/function/invocations"}, *paths); d != "" {
		t.Errorf("RIE paths (-want +got):\n%s", d)
	}
}

func TestClientTimeout(t *testing.T) {
	c, _ := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the server sees the client go only after the body
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	inv, err := New(c, Config{FunctionName: "orders", Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	_, err = inv.Invoke(t.Context(), request())
	var fe *mapping.FunctionError
	if !errors.As(err, &fe) || !fe.Timeout || fe.Message != "Task timed out after 0.20 seconds" {
		t.Errorf("err = %v, want a timeout function error", err)
	}
}

// TestRIESerialises checks that with RIE compatibility calls never overlap,
// even when a caller gives up.
func TestRIESerialises(t *testing.T) {
	var in, most atomic.Int32
	c, _ := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		n := in.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		in.Add(-1)
		io.WriteString(w, `{}`)
	})
	inv, err := New(c, Config{FunctionName: "orders", RIECompat: true})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			ctx := t.Context()
			if i%3 == 0 {
				var cancel func()
				ctx, cancel = context.WithTimeout(ctx, 5*time.Millisecond)
				defer cancel()
			}
			_, _ = inv.Invoke(ctx, request())
		})
	}
	wg.Wait()
	// Abandoned calls finish in the background.
	for range 100 {
		if in.Load() == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if most.Load() != 1 {
		t.Errorf("up to %d calls at once, want 1", most.Load())
	}
}

// TestRIETimeoutKeepsEmulator checks that a call past the client's timeout
// is a timeout for its caller while the emulator stays held until it
// answers, and that a queued call's time starts when it gets the emulator.
func TestRIETimeoutKeepsEmulator(t *testing.T) {
	var in, most atomic.Int32
	c, _ := fakeLambda(t, func(w http.ResponseWriter, r *http.Request) {
		n := in.Add(1)
		if n > most.Load() {
			most.Store(n)
		}
		defer in.Add(-1)
		var cmd struct{ Ms int }
		_ = json.NewDecoder(r.Body).Decode(&cmd)
		time.Sleep(time.Duration(cmd.Ms) * time.Millisecond)
		io.WriteString(w, `{}`)
	})
	inv, err := New(c, Config{FunctionName: "orders", RIECompat: true, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	slow := make(chan error, 1)
	go func() {
		_, err := inv.Invoke(t.Context(), &mapping.Request{Payload: []byte(`{"Ms":600}`)})
		slow <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	_, err = inv.Invoke(t.Context(), &mapping.Request{Payload: []byte(`{"Ms":200}`)})
	if err != nil {
		t.Errorf("queued call: %v, want success: its time starts when it gets the emulator", err)
	}
	if took := time.Since(start); took < 700*time.Millisecond {
		t.Errorf("queued call returned after %s, before the slow call released the emulator", took)
	}
	var fe *mapping.FunctionError
	if err := <-slow; !errors.As(err, &fe) || !fe.Timeout {
		t.Errorf("slow call: err = %v, want a timeout", err)
	}
	if most.Load() != 1 {
		t.Errorf("%d calls reached the emulator at once, want 1", most.Load())
	}
}
