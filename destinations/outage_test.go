package destinations

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/cenkalti/backoff/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/servers"
)

// breaker is a reverse proxy to a real server that can be broken: while
// down it drops every connection without an answer.
type breaker struct {
	down  atomic.Bool
	proxy *httputil.ReverseProxy
	srv   *httptest.Server
}

func newBreaker(t *testing.T, target string) *breaker {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	b := &breaker{proxy: httputil.NewSingleHostReverseProxy(u)}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.down.Load() {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		b.proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

// TestOutageThenRecovery breaks the path to each destination's server: sends
// fail with transient errors and deliver nothing while it stays down, and
// the engine's kind of retry loop delivers exactly one record once it heals.
func TestOutageThenRecovery(t *testing.T) {
	ep := servers.Moto(t)
	golden := string(goldenBytes(t, "kinesis_failure.golden.json"))
	goldenS3 := string(goldenBytes(t, "kinesis_failure_s3.golden.json"))

	// awsConfig points a client at the breaker, with the SDK's own retries
	// off so that each Send is one attempt.
	awsConfig := func(proxy string) aws.Config {
		cfg := servers.AWSConfig(proxy)
		cfg.RetryMaxAttempts = 1
		return cfg
	}
	must := func(t *testing.T, d mapping.Destination, err error) mapping.Destination {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}

	tests := []struct {
		name string
		// setup prepares the real server's side. It returns the server the
		// breaker fronts, how to make the destination through the breaker at
		// proxy, and how to read what reached the server.
		setup func(t *testing.T) (upstream string, connect func(proxy string) mapping.Destination, delivered func(t *testing.T, want int) []string)
		want  string
	}{
		{
			name: "sqs",
			setup: func(t *testing.T) (string, func(string) mapping.Destination, func(*testing.T, int) []string) {
				url, arn := servers.CreateQueue(t, ep, servers.UniqueName("outage"), nil)
				return ep, func(proxy string) mapping.Destination {
						d, err := New(t.Context(), arn, Deps{SQS: sqs.NewFromConfig(awsConfig(proxy))})
						return must(t, d, err)
					}, func(t *testing.T, want int) []string {
						return receiveAll(t, servers.SQSClient(ep), url, want)
					}
			},
			want: golden,
		},
		{
			name: "sns",
			setup: func(t *testing.T) (string, func(string) mapping.Destination, func(*testing.T, int) []string) {
				topic := servers.CreateTopic(t, ep, servers.UniqueName("outage"))
				url, qarn := servers.CreateQueue(t, ep, servers.UniqueName("outage-sub"), nil)
				if _, err := servers.SNSClient(ep).Subscribe(t.Context(), &sns.SubscribeInput{
					TopicArn: aws.String(topic), Protocol: aws.String("sqs"), Endpoint: aws.String(qarn),
				}); err != nil {
					t.Fatal(err)
				}
				return ep, func(proxy string) mapping.Destination {
						d, err := New(t.Context(), topic, Deps{SNS: sns.NewFromConfig(awsConfig(proxy))})
						return must(t, d, err)
					}, func(t *testing.T, want int) []string {
						var out []string
						for _, body := range receiveAll(t, servers.SQSClient(ep), url, want) {
							var env struct{ Message string }
							if err := json.Unmarshal([]byte(body), &env); err != nil {
								t.Fatal(err)
							}
							out = append(out, env.Message)
						}
						return out
					}
			},
			want: golden,
		},
		{
			name: "s3",
			setup: func(t *testing.T) (string, func(string) mapping.Destination, func(*testing.T, int) []string) {
				bucket := servers.UniqueName("outage")
				servers.CreateBucket(t, ep, bucket)
				return ep, func(proxy string) mapping.Destination {
						client := s3.NewFromConfig(awsConfig(proxy), func(o *s3.Options) { o.UsePathStyle = true })
						d, err := New(t.Context(), "arn:aws:s3:::"+bucket, Deps{S3: client})
						return must(t, d, err)
					}, func(t *testing.T, _ int) []string {
						c := servers.S3Client(ep)
						list, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
						if err != nil {
							t.Fatal(err)
						}
						var out []string
						for _, o := range list.Contents {
							obj, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
							if err != nil {
								t.Fatal(err)
							}
							body, err := io.ReadAll(obj.Body)
							obj.Body.Close()
							if err != nil {
								t.Fatal(err)
							}
							out = append(out, string(body))
						}
						return out
					}
			},
			want: goldenS3,
		},
		{
			name: "http",
			setup: func(t *testing.T) (string, func(string) mapping.Destination, func(*testing.T, int) []string) {
				var mu sync.Mutex
				var bodies []string
				sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					body, _ := io.ReadAll(r.Body)
					mu.Lock()
					bodies = append(bodies, string(body))
					mu.Unlock()
					w.WriteHeader(http.StatusNoContent)
				}))
				t.Cleanup(sink.Close)
				return sink.URL, func(proxy string) mapping.Destination {
						d, err := New(t.Context(), proxy+"/failures", Deps{})
						return must(t, d, err)
					}, func(*testing.T, int) []string {
						mu.Lock()
						defer mu.Unlock()
						return append([]string(nil), bodies...)
					}
			},
			want: golden,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream, connect, delivered := tt.setup(t)
			b := newBreaker(t, upstream)
			d := connect(b.srv.URL)

			b.down.Store(true)
			err := d.Send(t.Context(), testFailure())
			if err == nil || isPermanent(err) {
				t.Fatalf("Send while down = %v, want a transient error", err)
			}
			// The engine's retry loop, bounded: it keeps failing while the
			// server stays down.
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			err = retry(ctx, d)
			cancel()
			if err == nil {
				t.Fatal("retries succeeded while the server was down")
			}
			if got := delivered(t, 0); len(got) != 0 {
				t.Fatalf("%d records reached the server while it was down", len(got))
			}

			b.down.Store(false)
			ctx, cancel = context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			if err := retry(ctx, d); err != nil {
				t.Fatalf("retries after the server healed: %v", err)
			}
			if diff := cmp.Diff([]string{tt.want}, delivered(t, 1)); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
		})
	}
}

// retry sends the test failure until it is delivered or ctx ends, as the
// engine does.
func retry(ctx context.Context, d mapping.Destination) error {
	bo := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(20*time.Millisecond),
		backoff.WithMaxInterval(200*time.Millisecond),
		backoff.WithMaxElapsedTime(0))
	return backoff.Retry(func() error { return d.Send(ctx, testFailure()) }, backoff.WithContext(bo, ctx))
}
