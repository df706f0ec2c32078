package destinations

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"

	"github.com/esmd-dev/esmd/test/servers"
)

// createTopic creates a one-partition topic on the brokers.
func createTopic(t *testing.T, brokers []string, topic string) {
	t.Helper()
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
}

func TestKafkaSend(t *testing.T) {
	brokers := servers.Kafka(t)
	topic := servers.UniqueName("failures")
	createTopic(t, brokers, topic)

	d, err := NewKafka("kafka://"+brokers[0]+","+brokers[1]+"/"+topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Send(t.Context(), testFailure()); err != nil {
		t.Fatal(err)
	}

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type msg struct{ Key, Value, ContentType string }
	got := msg{string(m.Key), string(m.Value), ""}
	for _, h := range m.Headers {
		if h.Key == "content-type" {
			got.ContentType = string(h.Value)
		}
	}
	want := msg{"a1b2c3d4-0000-4000-8000-0123456789ab/shardId-000000000001", string(goldenBytes(t, "kinesis_failure.golden.json")), "application/json"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}

	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := d.Send(t.Context(), testFailure()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestKafkaMissingTopicIsTransient(t *testing.T) {
	brokers := servers.Kafka(t)
	topic := servers.UniqueName("missing")
	d, err := NewKafka("kafka://"+brokers[0]+"/"+topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err = d.Send(ctx, testFailure())
	if err == nil || isPermanent(err) {
		t.Fatalf("Send to a missing topic = %v, want a transient error", err)
	}
	// Once the operator creates it, the engine's retry succeeds.
	createTopic(t, brokers, topic)
	if err := retry(ctx, d); err != nil {
		t.Fatalf("after creating the topic: %v", err)
	}
}

func TestKafkaCloseUnused(t *testing.T) {
	d, err := NewKafka("kafka://127.0.0.1:1/t", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(t.Context(), testFailure()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}
