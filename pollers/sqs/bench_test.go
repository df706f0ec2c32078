package sqs

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"golang.org/x/sync/errgroup"

	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/invoke/httpfunc"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/servers"
)

// sqsServers are the servers BenchmarkSQSThroughput runs on, with how many
// messages each side drains: moto spends time proportional to the queue's
// depth on every receive and delete, so its queue is kept small.
var sqsServers = []struct {
	name     string
	start    func(testing.TB) string
	messages int
}{
	{"moto", servers.Moto, 500},
	{"elasticmq", servers.ElasticMQ, 5000},
}

// benchWorkers is the concurrency of the raw loop: esmd's initial five
// pollers.
const benchWorkers = 5

// BenchmarkSQSThroughput drains a pre-filled queue three times in each
// iteration, on each server, in rotating order: through a raw
// ReceiveMessage + DeleteMessageBatch loop with five workers, and through
// an SQSRunner invoking a no-op HTTP function (receive, encode, invoke,
// batch delete), once with its pollers capped at the raw loop's five and
// once scaling as Lambda does (up to 300 more a minute while every receive
// returns messages). Each drain is timed to its last delete. esmd/raw
// compares like with like, at one concurrency;
// scaling/raw shows what Lambda's scaling does on the server, which on moto,
// one Python process, is to slow every request down.
func BenchmarkSQSThroughput(b *testing.B) {
	for _, srv := range sqsServers {
		b.Run(srv.name, func(b *testing.B) { benchSQSThroughput(b, srv.start(b), srv.messages) })
	}
}

func benchSQSThroughput(b *testing.B, ep string, benchMessages int) {
	c := servers.SQSClient(ep)
	fn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("{}")) }))
	defer fn.Close()
	inv, err := httpfunc.New(httpfunc.Config{URL: fn.URL, Timeout: 30 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	fill := func(url string) {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(4)
		for i := 0; i < benchMessages; i += 10 {
			var es []types.SendMessageBatchRequestEntry
			for j := 0; j < 10; j++ {
				es = append(es, types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)),
					MessageBody: aws.String(fmt.Sprintf(`{"order":%d,"note":"a typical small JSON body"}`, i+j))})
			}
			g.Go(func() error {
				_, err := c.SendMessageBatch(gctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: es})
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	// raw drains the queue at url and returns how long it took to the last
	// delete; the long polls then still waiting are cancelled, not timed.
	raw := func(url string) time.Duration {
		var got atomic.Int64
		var last atomic.Int64 // nanoseconds from start to the last delete
		start := time.Now()
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		g, gctx := errgroup.WithContext(wctx)
		// After the last delete, the calls still under way are cancelled:
		// their errors end a worker without failing the run.
		failed := func(err error) error {
			if got.Load() >= int64(benchMessages) {
				return nil
			}
			return err
		}
		for range benchWorkers {
			g.Go(func() error {
				for got.Load() < int64(benchMessages) {
					out, err := c.ReceiveMessage(gctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
						MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}, MessageAttributeNames: []string{"All"}})
					if err != nil {
						return failed(err)
					}
					if len(out.Messages) == 0 {
						continue
					}
					var es []types.DeleteMessageBatchRequestEntry
					for i, m := range out.Messages {
						es = append(es, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
					}
					if _, err := c.DeleteMessageBatch(gctx, &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: es}); err != nil {
						return failed(err)
					}
					if got.Add(int64(len(out.Messages))) >= int64(benchMessages) {
						last.Store(int64(time.Since(start)))
						stop()
					}
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
		return time.Duration(last.Load())
	}
	// viaESMD drains the queue of arn through an SQSRunner with at most
	// maxPollers pollers (0: scaling as Lambda does) and returns how long it
	// took to the last delete, as the runner counts them; the drain after
	// is not timed.
	viaESMD := func(arn string, maxPollers int) time.Duration {
		q, err := New(c, Config{QueueARN: arn, MaxWait: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		r, err := mapping.NewSQSRunner(mapping.SQSConfig{Name: "bench", QueueARN: arn, BatchSize: 10, WaitTime: time.Second, MaxConcurrency: maxPollers},
			mapping.SQSDeps{Queue: q, Invoker: inv})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		tick := time.NewTicker(time.Millisecond)
		for r.SQSStats().DeletedEvents.Load() < int64(benchMessages) {
			<-tick.C
		}
		took := time.Since(start)
		tick.Stop()
		if err := r.Drain(ctx); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		return took
	}
	var rawT, esmdT, scalingT time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		rawURL, _ := servers.CreateQueue(b, ep, servers.UniqueName("bench-raw"), nil)
		esmdURL, esmdARN := servers.CreateQueue(b, ep, servers.UniqueName("bench-esmd"), nil)
		scalingURL, scalingARN := servers.CreateQueue(b, ep, servers.UniqueName("bench-scaling"), nil)
		for _, url := range []string{rawURL, esmdURL, scalingURL} {
			fill(url)
		}
		b.StartTimer()
		runs := []func(){
			func() { rawT += raw(rawURL) },
			func() { esmdT += viaESMD(esmdARN, benchWorkers) },
			func() { scalingT += viaESMD(scalingARN, 0) },
		}
		// Rotate which goes first, so that none gains from another's warm
		// server.
		for k := range runs {
			runs[(i+k)%len(runs)]()
		}
		i++
	}
	total := float64(benchMessages * b.N)
	b.ReportMetric(total/rawT.Seconds(), "raw-msgs/s")
	b.ReportMetric(total/esmdT.Seconds(), "esmd-msgs/s")
	b.ReportMetric(rawT.Seconds()/esmdT.Seconds(), "esmd/raw")
	b.ReportMetric(total/scalingT.Seconds(), "scaling-msgs/s")
	b.ReportMetric(rawT.Seconds()/scalingT.Seconds(), "scaling/raw")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkConvertAndEncode measures the per-message work of a receive: the
// SDK message to the encoder's input, then Lambda's SQS record.
func BenchmarkConvertAndEncode(b *testing.B) {
	enc := event.NewSQSEncoder("us-east-1", "arn:aws:sqs:us-east-1:000000000000:q")
	m := types.Message{
		MessageId: aws.String("059f36b4-87a3-44ab-83d2-661975830a7d"), ReceiptHandle: aws.String("AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a"),
		Body: aws.String(`{"order":12345,"items":["a","b","c"],"note":"a typical small JSON body"}`), MD5OfBody: aws.String("e4e68fb7bd0e697a0ae8f1bb342846b3"),
		Attributes: map[string]string{"ApproximateReceiveCount": "1", "SentTimestamp": "1545082649183",
			"SenderId": "AIDAIENQZJOLO23YVJ4VO", "ApproximateFirstReceiveTimestamp": "1545082649185"},
		MessageAttributes: map[string]types.MessageAttributeValue{"kind": {DataType: aws.String("String"), StringValue: aws.String("order")}},
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = enc.Encode(convert(&m))
	}
}
