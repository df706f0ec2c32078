package main

import (
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/esmd-dev/esmd/config"
	"github.com/esmd-dev/esmd/test/fakes"
)

// TestSQSRunnerSettings checks that the esmd: keys of an SQS mapping reach
// its runner, and Lambda's defaults when they are absent.
func TestSQSRunnerSettings(t *testing.T) {
	tests := []struct {
		name, esmd            string
		wait, scale           time.Duration
		initial, min, most    int
		heartbeat, visibility bool
	}{
		{"defaults", "{}", 20 * time.Second, time.Second, 5, 2, 1000, false, false},
		// Lambda's scale-down to two batches is off with MaximumConcurrency.
		{"defaults with MaximumConcurrency", "{}\n    ScalingConfig: {MaximumConcurrency: 50}", 20 * time.Second, time.Second, 5, 5, 50, false, false},
		{"defaults with MaximumConcurrency 3", "{}\n    ScalingConfig: {MaximumConcurrency: 3}", 20 * time.Second, time.Second, 3, 3, 3, false, false},
		{"set", "{waitTime: 5s, initialPollers: 10, minPollers: 3, scaleInterval: 500ms, visibilityHeartbeat: true, visibilityOnError: 0s}",
			5 * time.Second, 500 * time.Millisecond, 10, 3, 1000, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(`
functions:
  fn: {http: {url: "http://127.0.0.1:8080/"}}
mappings:
  - EventSourceArn: arn:aws:sqs:us-east-1:123456789012:jobs
    FunctionName: fn
    esmd: `+tc.esmd+"\n"), "esmd.yaml", func(string) (string, bool) { return "", false })
			if err != nil {
				t.Fatal(err)
			}
			cl := &clients{cfg: aws.Config{Region: "us-east-1"}}
			r, err := newSQSRunner(cfg.Mappings[0].Settings(), cfg, &fakes.Function{}, cl, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			c := r.Config()
			if c.WaitTime != tc.wait || c.ScaleInterval != tc.scale || c.InitialConcurrency != tc.initial || c.MinConcurrency != tc.min ||
				c.MaxConcurrency != tc.most || c.Heartbeat != tc.heartbeat || (c.VisibilityOnError != nil) != tc.visibility {
				t.Fatalf("runner config: wait %s, scale %s, pollers %d..%d of %d, heartbeat %v, visibilityOnError %v",
					c.WaitTime, c.ScaleInterval, c.MinConcurrency, c.InitialConcurrency, c.MaxConcurrency, c.Heartbeat, c.VisibilityOnError)
			}
		})
	}
}
