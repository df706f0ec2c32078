package servers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

var elasticMQ service = service{name: "elasticmq"}

// ElasticMQ returns the http endpoint of the test binary's ElasticMQ server
// (an in-memory SQS implementation on the JVM), starting it on first use.
// Unlike moto, it holds a FIFO message group while a message of it is in
// flight, so it serves the tests that need SQS's exact FIFO ordering. Queue
// URLs and ARNs name region us-east-1 and account 000000000000 (Account). It
// skips t (fails under CI=true) when ElasticMQ or java is not installed
// (bash test/install-elasticmq.sh). Safe for concurrent use; blocks while the
// server starts (about 3-5 s).
func ElasticMQ(t testing.TB) string {
	t.Helper()
	return elasticMQ.get(t, func() ([]string, error) {
		return startWithRetry(startElasticMQ)
	})[0]
}

// elasticMQConfig binds both of ElasticMQ's listeners to 127.0.0.1 (its
// defaults are 0.0.0.0) and turns the stats listener off.
const elasticMQConfig = `include classpath("application.conf")
node-address { protocol = "http", host = "127.0.0.1", port = %[1]d, context-path = "" }
generate-node-address = false
rest-sqs { enabled = true, bind-hostname = "127.0.0.1", bind-port = %[1]d, sqs-limits = strict }
rest-stats { enabled = false, bind-hostname = "127.0.0.1", bind-port = %[2]d }
aws { region = %[3]q, accountId = %[4]q }
`

func startElasticMQ() (string, error) {
	// The stamp is written last by install-elasticmq.sh: a half-done
	// install counts as not installed.
	if _, err := tool("elasticmq", filepath.Join("elasticmq", ".stamp")); err != nil {
		return "", err
	}
	lib, err := tool("elasticmq", filepath.Join("elasticmq", "lib"))
	if err != nil {
		return "", err
	}
	java, err := exec.LookPath("java")
	if err != nil {
		return "", &notInstalledError{server: "elasticmq (java)"}
	}
	port, err := freePort()
	if err != nil {
		return "", err
	}
	stats, err := freePort()
	if err != nil {
		return "", err
	}
	cfg, err := os.CreateTemp("", "esmd-elasticmq-*.conf")
	if err != nil {
		return "", fmt.Errorf("elasticmq: config file: %w", err)
	}
	cfgPath := cfg.Name()
	register("elasticmq config", func() error { return os.Remove(cfgPath) })
	_, err = fmt.Fprintf(cfg, elasticMQConfig, port, stats, Region, Account)
	if cerr := cfg.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("elasticmq: write config: %w", err)
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(port)
	err = startProc(proc{
		name: "elasticmq",
		path: java,
		args: []string{
			"-Xmx512m",
			"-Dconfig.file=" + cfgPath,
			"-cp", filepath.Join(lib, "*"),
			"org.elasticmq.server.Main",
		},
		ready: func(ctx context.Context) error {
			return httpAnswers(ctx, "POST", endpoint+"/", map[string]string{
				"Content-Type": "application/x-amz-json-1.0",
				"X-Amz-Target": "AmazonSQS.ListQueues",
			}, "{}")
		},
	})
	return endpoint, err
}
