package servers

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	rieMu  sync.Mutex
	rieSvc = map[string]*service{}
)

// RIE returns the http endpoint of AWS's Lambda Runtime Interface Emulator
// (aws-lambda-rie) running handler, a command that speaks the Lambda Runtime
// API (for example an aws-lambda-go binary), with a function timeout of
// timeout rounded up to whole seconds. One emulator is started per handler
// and timeout per test binary, on first use, on free 127.0.0.1 ports.
//
// The emulator serves the Invoke API for the function name "function" only,
// runs one invocation at a time (a concurrent invoke makes it crash), starts
// the handler on the first invoke and again after a timeout, and reports
// handler errors in a 200 body (see TEST-SERVERS.md). It skips t (fails
// under CI=true) when aws-lambda-rie is not installed (bash
// test/install-lambda.sh). Safe for concurrent use; blocks while the
// emulator starts.
func RIE(t testing.TB, handler []string, timeout time.Duration) string {
	t.Helper()
	secs := int((timeout + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	key := strings.Join(handler, "\x00") + "\x00" + strconv.Itoa(secs)
	rieMu.Lock()
	s, ok := rieSvc[key]
	if !ok {
		s = &service{name: "aws-lambda-rie"}
		rieSvc[key] = s
	}
	rieMu.Unlock()
	return s.get(t, func() ([]string, error) {
		return startWithRetry(func() (string, error) { return startRIE(handler, secs) })
	})[0]
}

func startRIE(handler []string, secs int) (string, error) {
	if len(handler) == 0 {
		return "", fmt.Errorf("aws-lambda-rie: no handler command")
	}
	bin, err := tool("aws-lambda-rie", filepath.Join("bin", "aws-lambda-rie"))
	if err != nil {
		return "", err
	}
	invokePort, err := freePort()
	if err != nil {
		return "", err
	}
	apiPort, err := freePort()
	if err != nil {
		return "", err
	}
	endpoint := "http://127.0.0.1:" + strconv.Itoa(invokePort)
	args := append([]string{
		"--runtime-interface-emulator-address", "127.0.0.1:" + strconv.Itoa(invokePort),
		"--runtime-api-address", "127.0.0.1:" + strconv.Itoa(apiPort),
	}, handler...)
	err = startProc(proc{
		name: "aws-lambda-rie",
		path: bin,
		args: args,
		env: []string{
			"AWS_LAMBDA_FUNCTION_NAME=function",
			"AWS_LAMBDA_FUNCTION_TIMEOUT=" + strconv.Itoa(secs),
			"AWS_REGION=" + Region,
			"AWS_DEFAULT_REGION=" + Region,
		},
		ready: func(ctx context.Context) error {
			return httpAnswers(ctx, "GET", endpoint+"/", nil, "")
		},
	})
	return endpoint, err
}
