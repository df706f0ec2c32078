package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/esmd-dev/esmd/test/servers"
)

// dstSink is one on-failure destination of the poison-record test: the
// target esmd is given, and how to read back what reached it.
type dstSink struct {
	target string
	// read returns the failure records that arrived, as JSON, waiting
	// until there are at least n or timeout passes.
	read func(t *testing.T, n int, timeout time.Duration) []string
	// withPayload is set when the record carries the batch's event (S3).
	withPayload bool
}

// dstPoll calls get until it returns at least n items or timeout passes.
func dstPoll(n int, timeout time.Duration, get func() []string) []string {
	deadline := time.Now().Add(timeout)
	for {
		got := get()
		if len(got) >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func dstSQS(t *testing.T, moto string) dstSink {
	url, arn := servers.CreateQueue(t, moto, servers.UniqueName("poison-failures"), nil)
	var got []string
	return dstSink{target: arn, read: func(t *testing.T, n int, timeout time.Duration) []string {
		got = append(got, receiveAll(t, moto, url, n-len(got), timeout)...)
		return got
	}}
}

func dstSNS(t *testing.T, moto string) dstSink {
	topic := servers.CreateTopic(t, moto, servers.UniqueName("poison-failures"))
	url, qarn := servers.CreateQueue(t, moto, servers.UniqueName("poison-failures-sub"), nil)
	if _, err := servers.SNSClient(moto).Subscribe(t.Context(), &sns.SubscribeInput{
		TopicArn: aws.String(topic), Protocol: aws.String("sqs"), Endpoint: aws.String(qarn),
	}); err != nil {
		t.Fatal(err)
	}
	var got []string
	return dstSink{target: topic, read: func(t *testing.T, n int, timeout time.Duration) []string {
		for _, body := range receiveAll(t, moto, url, n-len(got), timeout) {
			var env struct{ Message string }
			if err := json.Unmarshal([]byte(body), &env); err != nil {
				t.Fatalf("SNS envelope %s: %v", body, err)
			}
			got = append(got, env.Message)
		}
		return got
	}}
}

func dstS3(t *testing.T, moto string) dstSink {
	bucket := servers.UniqueName("poison-failures")
	servers.CreateBucket(t, moto, bucket)
	c := servers.S3Client(moto)
	return dstSink{target: "arn:aws:s3:::" + bucket, withPayload: true, read: func(t *testing.T, n int, timeout time.Duration) []string {
		return dstPoll(n, timeout, func() []string {
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
		})
	}}
}

func dstKafka(t *testing.T) dstSink {
	brokers := servers.Kafka(t)
	topic := servers.UniqueName("poison-failures")
	cl := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second}
	res, err := cl.CreateTopics(t.Context(), &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: 1, ReplicationFactor: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Errors[topic]; err != nil {
		t.Fatal(err)
	}
	return dstSink{target: "kafka://" + strings.Join(brokers, ",") + "/" + topic, read: func(t *testing.T, n int, timeout time.Duration) []string {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
		defer r.Close()
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		var out []string
		for len(out) < n {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				break
			}
			out = append(out, string(m.Value))
		}
		return out
	}}
}

func dstNATS(t *testing.T) dstSink {
	url := servers.NATS(t)
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.ReplaceAll(servers.UniqueName("POISON"), "-", "_")
	subject := "esmd.failures." + name
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: name, Subjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	return dstSink{target: url + "/" + subject, read: func(t *testing.T, n int, timeout time.Duration) []string {
		return dstPoll(n, timeout, func() []string {
			info, err := st.Info(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
				m, err := st.GetMsg(t.Context(), seq)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, string(m.Data))
			}
			return out
		})
	}}
}

func dstHTTP(t *testing.T) dstSink {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, string(body))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return dstSink{target: srv.URL + "/failures", read: func(t *testing.T, n int, timeout time.Duration) []string {
		return dstPoll(n, timeout, func() []string {
			mu.Lock()
			defer mu.Unlock()
			return append([]string(nil), got...)
		})
	}}
}

func dstFile(t *testing.T) dstSink {
	path := filepath.Join(t.TempDir(), "out", "failures.jsonl")
	return dstSink{target: "file://" + path, read: func(t *testing.T, n int, timeout time.Duration) []string {
		return dstPoll(n, timeout, func() []string {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			var out []string
			sc := bufio.NewScanner(bytes.NewReader(b))
			for sc.Scan() {
				out = append(out, sc.Text())
			}
			return out
		})
	}}
}

// TestKinesisPoisonRecordToEachDestination runs one esmd per destination
// kind on a Kinesis stream with one poison record among good ones. Bisect
// isolates it with MaximumRetryAttempts 0, and its failure record, batch
// size 1 at the poison's sequence number, must reach the destination once.
func TestKinesisPoisonRecordToEachDestination(t *testing.T) {
	t.Parallel()
	ep := servers.KinesisMock(t)
	moto := servers.Moto(t)
	tests := []struct {
		name string
		sink func(t *testing.T) dstSink
	}{
		{"sqs", func(t *testing.T) dstSink { return dstSQS(t, moto) }},
		{"sns", func(t *testing.T) dstSink { return dstSNS(t, moto) }},
		{"s3", func(t *testing.T) dstSink { return dstS3(t, moto) }},
		{"kafka", dstKafka},
		{"nats", dstNATS},
		{"http", dstHTTP},
		{"file", dstFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := tt.sink(t)
			name := servers.UniqueName("poison-" + tt.name)
			arn := servers.CreateStream(t, ep, name, 1)
			const n, poison = 12, 7
			recs := make([]put, n)
			for i := range recs {
				recs[i] = put{Key: fmt.Sprintf("k%d", i), Data: []byte(fmt.Sprintf("r%02d", i))}
			}
			poisonData := string(recs[poison].Data)
			res := putRecords(t, ep, name, recs)
			poisonSeq, shard := aws.ToString(res[poison].SequenceNumber), aws.ToString(res[poison].ShardId)

			s := newSink(t, func(c call) (int, string) {
				for _, r := range c.Recs {
					if r.Data == poisonData {
						return 500, ""
					}
				}
				return 200, ""
			})
			dir := t.TempDir()
			startESMD(t, dir, kinesisYAML(ep, moto, dir, arn, s.srv.URL, fmt.Sprintf(`BatchSize: %d
MaximumBatchingWindowInSeconds: 1
BisectBatchOnFunctionError: true
MaximumRetryAttempts: 0
DestinationConfig: {OnFailure: {Destination: %q}}
esmd: {pollInterval: 100ms, retryBackoff: {initial: 10ms, max: 50ms}}`, n, dst.target)))

			got := dst.read(t, 1, 60*time.Second)
			if len(got) == 0 {
				t.Fatal("no failure record arrived within 60s")
			}
			waitFor(t, 30*time.Second, "every good record", func() bool {
				ok := map[string]bool{}
				for _, c := range s.snapshot() {
					if d := dataOf(c); !slices.Contains(d, poisonData) {
						for _, x := range d {
							ok[x] = true
						}
					}
				}
				return len(ok) == n-1
			})
			if got = dst.read(t, 2, time.Second); len(got) != 1 {
				t.Fatalf("%d failure records arrived, want 1:\n%s", len(got), strings.Join(got, "\n"))
			}

			body := got[0]
			var payload struct {
				Records []events.KinesisEventRecord `json:"Records"`
			}
			if dst.withPayload {
				var obj struct {
					Payload json.RawMessage `json:"payload"`
				}
				if err := json.Unmarshal([]byte(body), &obj); err != nil {
					t.Fatal(err)
				}
				if err := json.Unmarshal(obj.Payload, &payload); err != nil {
					t.Fatalf("payload %s: %v", obj.Payload, err)
				}
				i := strings.LastIndex(body, `,"payload":`)
				if i < 0 {
					t.Fatalf("no payload in %s", body)
				}
				body = body[:i] + "}"
			}
			f := decodeFailure(t, body)
			bi := f.info()
			if f.Batch == nil || bi.BatchSize != 1 || bi.StartSeq != poisonSeq || bi.EndSeq != poisonSeq ||
				bi.ShardID != shard || bi.StreamARN != arn ||
				f.RequestContext.Condition != "RetryAttemptsExhausted" || f.ResponseContext.FunctionError != "Unhandled" ||
				f.Version != "1.0" {
				t.Fatalf("failure record = %+v %+v; want batch size 1 at the poison %s of %s", f, bi, poisonSeq, shard)
			}
			if dst.withPayload {
				if len(payload.Records) != 1 || payload.Records[0].Kinesis.SequenceNumber != poisonSeq ||
					string(payload.Records[0].Kinesis.Data) != poisonData {
					t.Fatalf("payload = %+v, want the poison record only", payload.Records)
				}
			}
		})
	}
}
