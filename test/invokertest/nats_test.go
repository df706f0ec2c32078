package invokertest_test

import (
	"errors"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/esmd-dev/esmd/invoke/natsfunc"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/test/functions"
	"github.com/esmd-dev/esmd/test/invokertest"
	"github.com/esmd-dev/esmd/test/servers"
)

// bigNATS starts a nats-server whose max_payload (1 MB by default) holds a
// 6 MB event, as a deployment that sends whole Lambda batches over NATS
// must configure.
func bigNATS(t testing.TB) string {
	t.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{
		Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true,
		MaxPayload: 8 << 20, MaxPending: 64 << 20,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

func connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func newNATS(t testing.TB, url string, timeout time.Duration) *natsfunc.Invoker {
	t.Helper()
	subject := "fn." + servers.UniqueName("conformance")
	svc, err := functions.NATSService(connect(t, url), subject, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	inv, err := natsfunc.New(connect(t, url), natsfunc.Config{Subject: subject, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestNATS(t *testing.T) {
	invokertest.Run(t, invokertest.Target{
		Invoker: newNATS(t, bigNATS(t), suiteTimeout),
		Timeout: suiteTimeout,
	})
}

// TestNATSServerDefaults runs against the shared nats-server with its
// default settings: a function error and a timeout as usual, no responders
// and an event over max_payload (1 MB) as invoke-side errors.
func TestNATSServerDefaults(t *testing.T) {
	url := servers.NATS(t)
	inv := newNATS(t, url, 500*time.Millisecond)

	_, err := invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoError, Message: "no"}, 0))
	var fe *mapping.FunctionError
	if !errors.As(err, &fe) || fe.Type != functions.ErrorType || fe.Message != "no" {
		t.Errorf("error: err = %v, want HandlerError: no", err)
	}
	_, err = invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoSleep, Ms: 1500}, 0))
	if !errors.As(err, &fe) || !fe.Timeout {
		t.Errorf("sleep: err = %v, want a timeout", err)
	}

	_, err = invokertest.Invoke(t.Context(), inv, functions.Event(functions.Command{Do: functions.DoSize}, 2<<20))
	if !errors.Is(err, nats.ErrMaxPayload) || errors.As(err, &fe) {
		t.Errorf("2 MB event: err = %v, want an invoke-side nats.ErrMaxPayload", err)
	}

	nobody, err := natsfunc.New(connect(t, url), natsfunc.Config{Subject: "fn.nobody." + servers.UniqueName("x"), Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = invokertest.Invoke(t.Context(), nobody, functions.Event(functions.Command{Do: functions.DoOK}, 0))
	if !errors.Is(err, nats.ErrNoResponders) || errors.As(err, &fe) {
		t.Errorf("no responders: err = %v, want an invoke-side nats.ErrNoResponders", err)
	}
}
