package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/esmd-dev/esmd/test/servers"
)

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// esmdBinary builds cmd/esmd once per test binary.
func esmdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "esmd-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "esmd")
		cmd := exec.Command("go", "build", "-o", buildPath, "github.com/esmd-dev/esmd/cmd/esmd")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// proc is one esmd process.
type proc struct {
	t       *testing.T
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

// startESMD writes yaml to a config file in dir and runs `esmd run -c` on it.
func startESMD(t *testing.T, dir, yaml string) *proc {
	t.Helper()
	cfgPath := filepath.Join(dir, "esmd.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.CreateTemp(dir, "esmd-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(esmdBinary(t), "run", "-c", cfgPath)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, logPath: logf.Name(), done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("esmd log (%s):\n%s", p.logPath, lastLines(p.log(), 60))
		}
	})
	return p
}

func (p *proc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// term sends SIGTERM and waits for the process to exit, returning its exit
// code.
func (p *proc) term(timeout time.Duration) int {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		p.t.Fatalf("esmd did not exit within %s of SIGTERM", timeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// call is one invocation the sink received.
type call struct {
	At   time.Time
	Body []byte
	// Records is the event decoded as Kinesis records (empty for other
	// sources).
	Records []events.KinesisEventRecord
	// Recs is the event's records reduced to what every source has.
	Recs []rec
}

// sink is an HTTP function that records every invocation and answers with
// respond (success with an empty body when nil).
type sink struct {
	srv     *httptest.Server
	mu      sync.Mutex
	calls   []call
	respond func(c call) (status int, body string)
	active  int
	peak    int
}

func newSink(t *testing.T, respond func(c call) (int, string)) *sink {
	s := &sink{respond: respond}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		recs, err := decodeRecs(body)
		if err != nil {
			http.Error(w, "bad event: "+err.Error(), 400)
			return
		}
		var ev events.KinesisEvent
		_ = json.Unmarshal(body, &ev)
		c := call{At: time.Now(), Body: body, Records: ev.Records, Recs: recs}
		s.mu.Lock()
		s.calls = append(s.calls, c)
		s.active++
		s.peak = max(s.peak, s.active)
		s.mu.Unlock()
		status, out := 200, ""
		if s.respond != nil {
			status, out = s.respond(c)
		}
		s.mu.Lock()
		s.active--
		s.mu.Unlock()
		if status != 200 {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			w.WriteHeader(status)
			if out == "" {
				out = `{"errorMessage":"boom","errorType":"Error"}`
			}
		}
		_, _ = io.WriteString(w, out)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) snapshot() []call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]call(nil), s.calls...)
}

func (s *sink) peakConcurrency() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// count returns how many records the sink has received in all calls.
func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += len(c.Recs)
	}
	return n
}

// waitFor polls cond every 20 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// putOne writes one record and returns its shard and sequence number.
func putOne(t *testing.T, endpoint, stream, key string, data []byte) (string, string) {
	t.Helper()
	kc := servers.KinesisClient(endpoint)
	res, err := kc.PutRecord(context.Background(), &kinesis.PutRecordInput{StreamName: aws.String(stream), PartitionKey: aws.String(key), Data: data})
	if err != nil {
		t.Fatalf("put record: %v", err)
	}
	return aws.ToString(res.ShardId), aws.ToString(res.SequenceNumber)
}

// receiveAll drains the queue at url, deleting what it reads, until it has
// seen want messages or timeout passes.
func receiveAll(t *testing.T, endpoint, url string, want int, timeout time.Duration) []string {
	t.Helper()
	c := servers.SQSClient(endpoint)
	var bodies []string
	deadline := time.Now().Add(timeout)
	for len(bodies) < want && time.Now().Before(deadline) {
		res, err := c.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		for _, m := range res.Messages {
			bodies = append(bodies, aws.ToString(m.Body))
			_, _ = c.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle})
		}
	}
	return bodies
}

// kinesisYAML renders an esmd configuration with one Kinesis mapping to the
// sink; extra is indented into the mapping.
func kinesisYAML(kinesisEP, motoEP, dir, streamARN, sinkURL, extra string) string {
	eps := "    kinesis: " + kinesisEP + "\n"
	if motoEP != "" {
		eps += fmt.Sprintf("    sqs: %s\n    sns: %s\n    s3: %s\n", motoEP, motoEP, motoEP)
	}
	return streamYAML(eps, dir, streamARN, sinkURL, extra)
}

// streamYAML renders an esmd configuration with one stream mapping to the
// sink; endpoints are the lines under aws.endpoints, extra is indented into
// the mapping.
func streamYAML(endpoints, dir, streamARN, sinkURL, extra string) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `aws:
  region: us-east-1
  credentials: {accessKeyId: test, secretAccessKey: test}
  endpoints:
%s`, endpoints)
	fmt.Fprintf(&b, `functions:
  sink:
    http: {url: %q, timeout: 30s}
checkpoints:
  file: {path: %s}
server: {listen: "off"}
logging: {level: debug}
shutdownTimeout: 20s
mappings:
  - EventSourceArn: %s
    FunctionName: sink
    StartingPosition: TRIM_HORIZON
`, sinkURL, filepath.Join(dir, "state", "checkpoints.db"), streamARN)
	for _, line := range strings.Split(strings.TrimSpace(extra), "\n") {
		if line != "" {
			b.WriteString("    " + line + "\n")
		}
	}
	return b.String()
}
