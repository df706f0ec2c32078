package smoke

import (
	"testing"

	"github.com/esmd-dev/esmd/test/servers"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestNATSJetStreamPublishAck publishes to a JetStream stream and checks the
// ack and the stored message.
func TestNATSJetStreamPublishAck(t *testing.T) {
	ctx := ctx(t)
	nc, err := nats.Connect(servers.NATS(t))
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Names of their own: the server outlives one run of the test (-count).
	name := servers.UniqueName("SMOKE")
	subject := "smoke." + name + ".failures"
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"smoke." + name + ".>"}}); err != nil {
		t.Fatalf("create stream: %v", err)
	}
	ack, err := js.Publish(ctx, subject, []byte(`{"x":1}`), jetstream.WithMsgID("id-1"))
	if err != nil {
		t.Fatalf("publish: %v", err)
	}
	if ack.Stream != name || ack.Sequence != 1 || ack.Duplicate {
		t.Fatalf("ack = %+v, want stream %s, sequence 1, not duplicate", *ack, name)
	}
	dup, err := js.Publish(ctx, subject, []byte(`{"x":1}`), jetstream.WithMsgID("id-1"))
	if err != nil {
		t.Fatalf("publish duplicate: %v", err)
	}
	if !dup.Duplicate || dup.Sequence != 1 {
		t.Fatalf("duplicate ack = %+v, want Duplicate and sequence 1", *dup)
	}
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatalf("get msg: %v", err)
	}
	if m.Subject != subject || string(m.Data) != `{"x":1}` {
		t.Fatalf("stored message = %s %q", m.Subject, m.Data)
	}
}

// TestKafkaProduceConsume produces records with kgo to kfake and consumes them
// back in order.
func TestKafkaProduceConsume(t *testing.T) {
	ctx := ctx(t)
	addrs := servers.Kafka(t)
	topic := servers.UniqueName("smoke-failures")
	prod, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.DefaultProduceTopic(topic), kgo.AllowAutoTopicCreation(), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	want := []string{"a", "b", "c"}
	for _, v := range want {
		if err := prod.ProduceSync(ctx, &kgo.Record{Key: []byte("k"), Value: []byte(v),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v-" + v)}}}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []string
	for len(got) < len(want) {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %v before timeout", got)
		}
		for _, e := range fs.Errors() {
			t.Fatalf("fetch %s/%d: %v", e.Topic, e.Partition, e.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) != "k" || len(r.Headers) != 1 || string(r.Headers[0].Value) != "v-"+string(r.Value) {
				t.Errorf("record %q: key %q headers %v", r.Value, r.Key, r.Headers)
			}
			got = append(got, string(r.Value))
		})
	}
	if len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" {
		t.Fatalf("consumed %v, want %v", got, want)
	}
}
