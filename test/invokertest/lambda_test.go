package invokertest_test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/lambda"

	"github.com/esmd-dev/esmd/invoke/lambdafunc"
	"github.com/esmd-dev/esmd/test/functions"
	"github.com/esmd-dev/esmd/test/invokertest"
	"github.com/esmd-dev/esmd/test/servers"
)

// newRIE returns a Lambda invoker (RIE compatibility on) for the Go test
// handler running under AWS's Runtime Interface Emulator, whose function
// timeout is fnTimeout.
func newRIE(t testing.TB, fnTimeout time.Duration) *lambdafunc.Invoker {
	t.Helper()
	endpoint := servers.RIE(t, []string{functions.GoHandler(t)}, fnTimeout)
	inv, err := lambdafunc.New(lambda.NewFromConfig(servers.AWSConfig(endpoint)), lambdafunc.Config{
		FunctionName: "arn:aws:lambda:us-east-1:000000000000:function:orders",
		Qualifier:    "live",
		Timeout:      fnTimeout + 10*time.Second,
		RIECompat:    true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

func TestLambdaRIE(t *testing.T) {
	invokertest.Run(t, invokertest.Target{
		Invoker: newRIE(t, suiteTimeout),
		Timeout: suiteTimeout,
		Exits:   true,
	})
}
