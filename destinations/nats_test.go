package destinations

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/esmd-dev/esmd/test/servers"
)

// natsTarget returns the nats:// target of subject on the server at url.
func natsTarget(url, subject string) string {
	return strings.TrimSuffix(url, "/") + "/" + subject
}

func TestNATSCorePublish(t *testing.T) {
	url := servers.NATS(t)
	subject := "core." + servers.UniqueName("failures")
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	d, err := NewNATS(natsTarget(url, subject), nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := d.Send(t.Context(), testFailure()); err != nil {
			t.Fatal(err)
		}
	}
	want := string(goldenBytes(t, "kinesis_failure.golden.json"))
	// Core NATS does not deduplicate: both sends arrive.
	for i := range 2 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if string(m.Data) != want || m.Header.Get("Content-Type") != "application/json" {
			t.Errorf("message %d = %q %v, want %q", i, m.Data, m.Header, want)
		}
	}
	if d.stream != "" || !d.known {
		t.Errorf("stream = %q known = %v, want core NATS decided", d.stream, d.known)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !d.nc.IsClosed() {
		t.Error("connection not closed after Close")
	}
	if err := d.Send(t.Context(), testFailure()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestNATSJetStreamPublish(t *testing.T) {
	url := servers.NATS(t)
	name := strings.ReplaceAll(servers.UniqueName("FAILURES"), "-", "_")
	subject := "js." + name + ".records"
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: name, Subjects: []string{"js." + name + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(t.Context(), name) })

	d, err := NewNATS(natsTarget(url, subject), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// The same record twice, as a retry after a lost ack would send it:
	// the stream keeps one copy.
	for range 2 {
		if err := d.Send(t.Context(), testFailure()); err != nil {
			t.Fatal(err)
		}
	}
	if d.stream != name {
		t.Errorf("stream = %q, want %q", d.stream, name)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("stream holds %d messages, want 1", info.State.Msgs)
	}
	m, err := st.GetMsg(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := string(goldenBytes(t, "kinesis_failure.golden.json")); string(m.Data) != want {
		t.Errorf("stored %q, want %q", m.Data, want)
	}

	// A stream deleted under a running destination: the publish fails
	// (transiently), and the next Send looks again and falls back to core.
	if err := js.DeleteStream(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	f := testFailure()
	f.RequestID = "another"
	if err := d.Send(t.Context(), f); err == nil || isPermanent(err) {
		t.Fatalf("Send to a deleted stream = %v, want a transient error", err)
	}
	if err := d.Send(t.Context(), f); err != nil {
		t.Fatalf("Send after the stream was deleted: %v", err)
	}
	if d.stream != "" {
		t.Errorf("stream = %q after deletion, want core", d.stream)
	}
}

func TestNATSServerDown(t *testing.T) {
	d, err := NewNATS("nats://127.0.0.1:1/failures", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Send(t.Context(), testFailure())
	if err == nil || isPermanent(err) {
		t.Fatalf("Send with no server = %v, want a transient error", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}
