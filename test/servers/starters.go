package servers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/twmb/franz-go/pkg/kfake"
)

var (
	kinesisMock service = service{name: "kinesis-mock"}
	kinesalite  service = service{name: "kinesalite"}
	moto        service = service{name: "moto"}
	natsSvc     service = service{name: "nats-server"}
	kafkaSvc    service = service{name: "kfake"}
)

// kinesisReady answers once a Kinesis server handles ListStreams.
func kinesisReady(endpoint string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		return httpAnswers(ctx, "POST", endpoint+"/", map[string]string{
			"Content-Type": "application/x-amz-json-1.1",
			"X-Amz-Target": "Kinesis_20131202.ListStreams",
		}, "{}")
	}
}

// KinesisMock returns the http endpoint of the test binary's kinesis-mock
// (npm kinesis-local), starting it on first use. Streams become ACTIVE, and
// splits and merges finish, after 100 ms; up to 1000 shards are allowed.
// It skips t (fails under CI=true) when kinesis-mock is not installed.
// Safe for concurrent use; blocks while the server starts.
func KinesisMock(t testing.TB) string {
	t.Helper()
	return kinesisMock.get(t, func() ([]string, error) {
		return startWithRetry(startKinesisMock)
	})[0]
}

func startKinesisMock() (string, error) {
	pkg, err := tool("kinesis-mock", filepath.Join("node_modules", "kinesis-local"))
	if err != nil {
		return "", err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return "", &notInstalledError{server: "kinesis-mock (node)"}
	}
	preload, err := script("preload.js")
	if err != nil {
		return "", fmt.Errorf("kinesis-mock: preload: %w", err)
	}
	plain, err := freePort()
	if err != nil {
		return "", err
	}
	tls, err := freePort()
	if err != nil {
		return "", err
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(plain)
	err = startProc(proc{
		name: "kinesis-mock",
		path: node,
		args: []string{"-r", preload, filepath.Join(pkg, "main.js")},
		dir:  pkg,
		env: []string{
			"KINESIS_MOCK_PLAIN_PORT=" + strconv.Itoa(plain),
			"KINESIS_MOCK_TLS_PORT=" + strconv.Itoa(tls),
			"KINESIS_MOCK_CERT_PATH=" + filepath.Join(pkg, "server.json"),
			"LOG_LEVEL=WARN",
			"CREATE_STREAM_DURATION=100ms",
			"DELETE_STREAM_DURATION=100ms",
			"UPDATE_STREAM_DURATION=100ms",
			"SPLIT_SHARD_DURATION=100ms",
			"MERGE_SHARDS_DURATION=100ms",
			"REGISTER_STREAM_CONSUMER_DURATION=100ms",
			"DEREGISTER_STREAM_CONSUMER_DURATION=100ms",
			"SHARD_LIMIT=1000",
			"AWS_ACCOUNT_ID=" + Account,
			"AWS_REGION=" + Region,
			"SHOULD_PERSIST_DATA=false",
		},
		ready: kinesisReady(endpoint),
	})
	return endpoint, err
}

// Kinesalite returns the http endpoint of the test binary's kinesalite,
// starting it on first use (in memory, 1000 shards, streams ACTIVE after
// 50 ms). Kinesalite addresses streams by name only: pass StreamName, not
// StreamARN. It skips t (fails under CI=true) when kinesalite is not
// installed. Safe for concurrent use; blocks while the server starts.
func Kinesalite(t testing.TB) string {
	t.Helper()
	return kinesalite.get(t, func() ([]string, error) {
		return startWithRetry(startKinesalite)
	})[0]
}

func startKinesalite() (string, error) {
	cli, err := tool("kinesalite", filepath.Join("node_modules", "kinesalite", "cli.js"))
	if err != nil {
		return "", err
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return "", &notInstalledError{server: "kinesalite (node)"}
	}
	preload, err := script("preload.js")
	if err != nil {
		return "", fmt.Errorf("kinesalite: preload: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	err = startProc(proc{
		name: "kinesalite",
		path: node,
		args: []string{"-r", preload, cli,
			"--port", strconv.Itoa(port),
			"--shardLimit", "1000",
			"--createStreamMs", "50",
			"--deleteStreamMs", "50",
			"--updateStreamMs", "50",
		},
		ready: kinesisReady(endpoint),
	})
	return endpoint, err
}

// Moto returns the http endpoint of the test binary's moto server (DynamoDB,
// DynamoDB Streams, SQS, SNS, S3 and more on one port), starting it on first
// use, through the harness's moto_shim.py, which puts every SQS queue's
// receive, send, delete, purge and visibility change under one lock
// (test/SERVERS.md). It skips t (fails under CI=true) when moto is not
// installed. Safe for concurrent use; blocks while the server starts
// (about 1-2 s).
func Moto(t testing.TB) string {
	t.Helper()
	return moto.get(t, func() ([]string, error) {
		return startWithRetry(startMoto)
	})[0]
}

func startMoto() (string, error) {
	bin, err := tool("moto", filepath.Join("venv", "bin", "moto_server"))
	if err != nil {
		return "", err
	}
	shim, err := script("moto_shim.py")
	if err != nil {
		return "", fmt.Errorf("moto: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	err = startProc(proc{
		name: "moto",
		path: filepath.Join(filepath.Dir(bin), "python"), // the venv's, which has moto
		args: []string{shim, "-H", "127.0.0.1", "-p", strconv.Itoa(port)},
		env: []string{
			"AWS_DEFAULT_REGION=" + Region,
			"MOTO_ACCOUNT_ID=" + Account,
			"PYTHONUNBUFFERED=1",
		},
		ready: func(ctx context.Context) error {
			return httpAnswers(ctx, "GET", endpoint+"/moto-api/data.json", nil, "")
		},
	})
	return endpoint, err
}

// NATS returns the nats:// URL of an embedded nats-server with JetStream
// (file store in a temporary directory), started in-process on first use on
// a random 127.0.0.1 port. Safe for concurrent use.
func NATS(t testing.TB) string {
	t.Helper()
	return natsSvc.get(t, startNATS)[0]
}

func startNATS() ([]string, error) {
	dir, err := os.MkdirTemp("", "esmd-nats-*")
	if err != nil {
		return nil, fmt.Errorf("nats: store dir: %w", err)
	}
	s, err := natsserver.NewServer(&natsserver.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  dir,
		NoSigs:    true,
		NoLog:     true,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("nats: new server: %w", err)
	}
	go s.Start()
	register("nats-server", func() error {
		s.Shutdown()
		s.WaitForShutdown()
		return os.RemoveAll(dir)
	})
	if !s.ReadyForConnections(30 * time.Second) {
		return nil, fmt.Errorf("nats: not ready for connections within 30s")
	}
	return []string{s.ClientURL()}, nil
}

// Kafka returns the broker addresses of an in-process kfake cluster (three
// brokers on random 127.0.0.1 ports, topics created on first use), started
// on first use. Safe for concurrent use.
func Kafka(t testing.TB) []string {
	t.Helper()
	addrs := kafkaSvc.get(t, startKafka)
	return append([]string(nil), addrs...)
}

func startKafka() ([]string, error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.AllowAutoTopicCreation())
	if err != nil {
		return nil, fmt.Errorf("kfake: new cluster: %w", err)
	}
	register("kfake", func() error { c.Close(); return nil })
	return c.ListenAddrs(), nil
}
