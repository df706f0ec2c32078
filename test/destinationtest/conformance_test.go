package destinationtest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/esmd-dev/esmd/destinations"
	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/destinationtest"
	"github.com/esmd-dev/esmd/test/servers"
)

func TestMain(m *testing.M) { servers.Main(m) }

// hostPort returns the host:port of an http:// or nats:// URL.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// proxyTarget fills Break and Heal from a proxy.
func proxyTarget(tg destinationtest.Target, p *destinationtest.Proxy) destinationtest.Target {
	tg.Break = func(*testing.T) { p.Break() }
	tg.Heal = func(t *testing.T) { p.Heal(t) }
	return tg
}

// collected accumulates what a Read found, for readers that consume (SQS).
type collected struct {
	mu  sync.Mutex
	got [][]byte
}

func (c *collected) reset() { c.mu.Lock(); c.got = nil; c.mu.Unlock() }

func (c *collected) add(b []byte) { c.mu.Lock(); c.got = append(c.got, b); c.mu.Unlock() }

func (c *collected) all() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]byte(nil), c.got...)
}

// poll calls more until all() has at least n items or timeout passes.
func (c *collected) poll(n int, timeout time.Duration, more func(wait time.Duration)) [][]byte {
	deadline := time.Now().Add(timeout)
	for len(c.all()) < n {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		more(min(left, time.Second))
	}
	return c.all()
}

// awsViaProxy returns an AWS config through the proxy, with the SDK's own
// retries off so that each Send is one attempt.
func awsViaProxy(p *destinationtest.Proxy) aws.Config {
	cfg := servers.AWSConfig("http://" + p.Addr())
	cfg.RetryMaxAttempts = 1
	return cfg
}

// sqsReader reads queue url on moto into c, deleting what it reads.
func sqsReader(t *testing.T, moto, url string, c *collected, wait time.Duration, unwrap func([]byte) []byte) {
	t.Helper()
	cl := servers.SQSClient(moto)
	ctx, cancel := context.WithTimeout(t.Context(), wait+5*time.Second)
	defer cancel()
	secs := int32(wait / time.Second)
	res, err := cl.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: secs})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if len(res.Messages) == 0 && secs == 0 {
		timer := time.NewTimer(wait)
		<-timer.C
	}
	for _, m := range res.Messages {
		c.add(unwrap([]byte(aws.ToString(m.Body))))
		if _, err := cl.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			t.Fatalf("delete: %v", err)
		}
	}
}

func sqsTarget(t *testing.T) destinationtest.Target {
	moto := servers.Moto(t)
	p := destinationtest.NewProxy(t, hostPort(t, moto))
	var url string
	var c collected
	return proxyTarget(destinationtest.Target{
		Name: "sqs",
		New: func(t *testing.T) (mapping.Destination, string) {
			var arn string
			url, arn = servers.CreateQueue(t, moto, servers.UniqueName("conformance"), nil)
			c.reset()
			d, err := destinations.New(t.Context(), arn, destinations.Deps{SQS: sqs.NewFromConfig(awsViaProxy(p))})
			if err != nil {
				t.Fatal(err)
			}
			return d, arn
		},
		Read: func(t *testing.T, n int, timeout time.Duration) [][]byte {
			return c.poll(n, timeout, func(wait time.Duration) {
				sqsReader(t, moto, url, &c, wait, func(b []byte) []byte { return b })
			})
		},
	}, p)
}

func snsTarget(t *testing.T) destinationtest.Target {
	moto := servers.Moto(t)
	p := destinationtest.NewProxy(t, hostPort(t, moto))
	var url string
	var c collected
	return proxyTarget(destinationtest.Target{
		Name: "sns",
		New: func(t *testing.T) (mapping.Destination, string) {
			topic := servers.CreateTopic(t, moto, servers.UniqueName("conformance"))
			var qarn string
			url, qarn = servers.CreateQueue(t, moto, servers.UniqueName("conformance-sub"), nil)
			if _, err := servers.SNSClient(moto).Subscribe(t.Context(), &sns.SubscribeInput{
				TopicArn: aws.String(topic), Protocol: aws.String("sqs"), Endpoint: aws.String(qarn),
			}); err != nil {
				t.Fatal(err)
			}
			c.reset()
			d, err := destinations.New(t.Context(), topic, destinations.Deps{SNS: sns.NewFromConfig(awsViaProxy(p))})
			if err != nil {
				t.Fatal(err)
			}
			return d, topic
		},
		Read: func(t *testing.T, n int, timeout time.Duration) [][]byte {
			return c.poll(n, timeout, func(wait time.Duration) {
				sqsReader(t, moto, url, &c, wait, func(b []byte) []byte {
					var env struct{ Type, Message string }
					if err := json.Unmarshal(b, &env); err != nil || env.Type != "Notification" {
						t.Fatalf("not an SNS notification (%v): %s", err, b)
					}
					return []byte(env.Message)
				})
			})
		},
	}, p)
}

func s3Target(t *testing.T) destinationtest.Target {
	moto := servers.Moto(t)
	p := destinationtest.NewProxy(t, hostPort(t, moto))
	var bucket string
	read := func(t *testing.T) [][]byte {
		c := servers.S3Client(moto)
		list, err := c.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		for _, o := range list.Contents {
			if !strings.HasPrefix(aws.ToString(o.Key), "aws/lambda/") {
				t.Errorf("object key %q is not in AWS's layout", aws.ToString(o.Key))
			}
			obj, err := c.GetObject(t.Context(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(obj.Body)
			obj.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, body)
		}
		return out
	}
	return proxyTarget(destinationtest.Target{
		Name:        "s3",
		WithPayload: true,
		New: func(t *testing.T) (mapping.Destination, string) {
			bucket = servers.UniqueName("conformance")
			servers.CreateBucket(t, moto, bucket)
			client := s3.NewFromConfig(awsViaProxy(p), func(o *s3.Options) { o.UsePathStyle = true })
			target := "arn:aws:s3:::" + bucket
			d, err := destinations.New(t.Context(), target, destinations.Deps{S3: client})
			if err != nil {
				t.Fatal(err)
			}
			return d, target
		},
		Read: func(t *testing.T, n int, timeout time.Duration) [][]byte {
			deadline := time.Now().Add(timeout)
			for {
				got := read(t)
				if len(got) >= n || time.Now().After(deadline) {
					return got
				}
				time.Sleep(50 * time.Millisecond)
			}
		},
	}, p)
}

func httpTarget(t *testing.T) destinationtest.Target {
	var c collected
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		c.add(body)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(sink.Close)
	p := destinationtest.NewProxy(t, hostPort(t, sink.URL))
	return proxyTarget(destinationtest.Target{
		Name: "http",
		New: func(t *testing.T) (mapping.Destination, string) {
			c.reset()
			target := "http://" + p.Addr() + "/failures"
			d, err := destinations.New(t.Context(), target, destinations.Deps{HTTPClient: &http.Client{Timeout: 5 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			return d, target
		},
		Read: func(t *testing.T, n int, timeout time.Duration) [][]byte {
			return c.poll(n, timeout, func(wait time.Duration) {
				time.Sleep(min(wait, 50*time.Millisecond))
			})
		},
	}, p)
}

func fileTarget(t *testing.T) destinationtest.Target {
	dir := t.TempDir()
	var path string
	read := func(t *testing.T) [][]byte {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			out = append(out, append([]byte(nil), sc.Bytes()...))
		}
		return out
	}
	return destinationtest.Target{
		Name: "file",
		New: func(t *testing.T) (mapping.Destination, string) {
			path = filepath.Join(dir, servers.UniqueName("failures")+".jsonl")
			target := "file://" + path
			d, err := destinations.New(t.Context(), target, destinations.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return d, target
		},
		Read: func(t *testing.T, n int, timeout time.Duration) [][]byte {
			deadline := time.Now().Add(timeout)
			for {
				got := read(t)
				if len(got) >= n || time.Now().After(deadline) {
					return got
				}
				time.Sleep(20 * time.Millisecond)
			}
		},
		// A directory where the file should be: every append fails, as on
		// a full or read-only disk, even for root.
		Break: func(t *testing.T) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		},
		Heal: func(t *testing.T) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func natsTarget(t *testing.T) destinationtest.Target {
	server := servers.NATS(t)
	p := destinationtest.NewProxy(t, hostPort(t, server))
	nc, err := nats.Connect(server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var cons jetstream.Consumer
	var c collected
	return proxyTarget(destinationtest.Target{
		Name: "nats",
		New: func(t *testing.T) (mapping.Destination, string) {
			name := strings.ReplaceAll(servers.UniqueName("CONFORMANCE"), "-", "_")
			subject := "failures." + name
			// Memory storage: the test needs no durability, and the shared
			// server's file store has failed to create a stream under load.
			st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.MemoryStorage})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
			cons, err = st.OrderedConsumer(t.Context(), jetstream.OrderedConsumerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			c.reset()
			target := "nats://" + p.Addr() + "/" + subject
			d, err := destinations.New(t.Context(), target, destinations.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return d, target
		},
		Read: func(t *testing.T, n int, timeout time.Duration) [][]byte {
			return c.poll(n, timeout, func(wait time.Duration) {
				batch, err := cons.Fetch(n-len(c.all()), jetstream.FetchMaxWait(wait))
				if err != nil {
					t.Fatal(err)
				}
				for m := range batch.Messages() {
					c.add(m.Data())
				}
				if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
					t.Fatal(err)
				}
			})
		},
	}, p)
}

// natsCoreTarget publishes to a subject no stream captures: core NATS, read
// by a subscriber connected straight to the server. Core NATS is at most
// once only towards subscribers that are absent; this one never is.
func natsCoreTarget(t *testing.T) destinationtest.Target {
	server := servers.NATS(t)
	p := destinationtest.NewProxy(t, hostPort(t, server))
	nc, err := nats.Connect(server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	var sub *nats.Subscription
	var c collected
	return proxyTarget(destinationtest.Target{
		Name: "nats-core",
		New: func(t *testing.T) (mapping.Destination, string) {
			subject := "core." + servers.UniqueName("failures")
			var err error
			if sub, err = nc.SubscribeSync(subject); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			c.reset()
			target := "nats://" + p.Addr() + "/" + subject
			d, err := destinations.New(t.Context(), target, destinations.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return d, target
		},
		Read: func(t *testing.T, n int, timeout time.Duration) [][]byte {
			return c.poll(n, timeout, func(wait time.Duration) {
				m, err := sub.NextMsg(wait)
				if err == nil {
					c.add(m.Data)
				} else if !errors.Is(err, nats.ErrTimeout) {
					t.Fatal(err)
				}
			})
		},
	}, p)
}

// kafkaTarget runs a kfake cluster of its own on fixed ports, persisted to
// disk: Break stops it, Heal starts it again on the same ports with the same
// data, as a broker restart would.
func kafkaTarget(t *testing.T) destinationtest.Target {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	broker := fmt.Sprintf("127.0.0.1:%d", port)
	var mu sync.Mutex
	var cluster *kfake.Cluster
	start := func(t *testing.T) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.DataDir(dir))
			if err == nil {
				mu.Lock()
				cluster = c
				mu.Unlock()
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kfake on %s: %v", broker, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stop := func() {
		mu.Lock()
		defer mu.Unlock()
		if cluster != nil {
			cluster.Close()
			cluster = nil
		}
	}
	start(t)
	t.Cleanup(stop)
	var topic string
	keys := map[string]bool{}
	for _, f := range []*event.Failure{destinationtest.KinesisFailure(), destinationtest.DynamoDBFailure()} {
		keys[f.MappingUUID+"/"+f.ShardID] = true
	}
	return destinationtest.Target{
		Name: "kafka",
		New: func(t *testing.T) (mapping.Destination, string) {
			topic = servers.UniqueName("conformance")
			// A transport of its own: the default one keeps connections to
			// the cluster of before the last restart.
			tr := &kafka.Transport{}
			defer tr.CloseIdleConnections()
			cl := &kafka.Client{Addr: kafka.TCP(broker), Timeout: 10 * time.Second, Transport: tr}
			res, err := cl.CreateTopics(t.Context(), &kafka.CreateTopicsRequest{
				Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := res.Errors[topic]; err != nil {
				t.Fatal(err)
			}
			target := "kafka://" + broker + "/" + topic
			d, err := destinations.New(t.Context(), target, destinations.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			return d, target
		},
		// A reader of partition 0 from the first offset: what arrived,
		// however many restarts ago.
		Read: func(t *testing.T, n int, timeout time.Duration) [][]byte {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
			defer r.Close()
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			var out [][]byte
			for len(out) < n {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					break
				}
				if !keys[string(m.Key)] {
					t.Errorf("message key %q, want <mapping UUID>/<shard id>", m.Key)
				}
				out = append(out, m.Value)
			}
			return out
		},
		Break: func(*testing.T) { stop() },
		Heal:  start,
	}
}

func TestConformance(t *testing.T) {
	targets := []struct {
		name string
		make func(*testing.T) destinationtest.Target
	}{
		{"sqs", sqsTarget}, {"sns", snsTarget}, {"s3", s3Target}, {"kafka", kafkaTarget},
		{"nats", natsTarget}, {"nats-core", natsCoreTarget}, {"http", httpTarget}, {"file", fileTarget},
	}
	for _, tt := range targets {
		t.Run(tt.name, func(t *testing.T) { destinationtest.Run(t, tt.make(t)) })
	}
}

// TestGoldenFilesAgree checks that the suite's Kinesis golden file is the
// one the destinations package pins too, so the two never drift apart.
func TestGoldenFilesAgree(t *testing.T) {
	a, err := os.ReadFile("testdata/kinesis_failure.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("../../destinations/testdata/kinesis_failure.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Errorf("the Kinesis golden files differ:\n%s\n%s", a, b)
	}
	files, _ := filepath.Glob("testdata/*.golden.json")
	sort.Strings(files)
	if len(files) != 4 {
		t.Errorf("golden files %v, want four", files)
	}
}
