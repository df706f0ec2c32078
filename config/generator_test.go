package config

import (
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
)

func TestGeneratorSource(t *testing.T) {
	cfg := parseFile(t, "testdata/generator.good.yaml", nil)
	load, items := cfg.Mappings[0].Settings(), cfg.Mappings[1].Settings()

	if load.Source.Kind != SourceGenerator || !load.Source.IsStream() || load.Source.label() != "generator source" {
		t.Fatalf("source %+v", load.Source)
	}
	g := load.Source.Generator
	if g == nil || g.Name != "load" || g.Shards != 8 || g.Rate != 50000 || g.Keys != 1000 || g.Size != 200 ||
		g.Count != 100000 || g.Seed != 42 || g.Poison != 0.01 || g.Shape != event.Kinesis {
		t.Fatalf("generator spec %+v", g)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", load.Name, "handler-load"},
		{"stream ARN", load.Source.StreamARN(), "arn:aws:kinesis:us-east-1:000000000000:stream/load"},
		{"starting position defaults to TRIM_HORIZON", load.StartingPosition, "TRIM_HORIZON"},
		{"poll interval", load.PollInterval, time.Duration(0)},
		{"discovery interval", load.ShardDiscoveryInterval, DefaultShardDiscoveryInterval},
		{"batch size", load.BatchSize, 500},
		{"parallelization", load.ParallelizationFactor, 4},
		{"bisect", load.BisectBatchOnFunctionError, true},
		{"retries", load.MaximumRetryAttempts, 2},
		{"destination", load.OnFailure.Path, "failures.jsonl"},
		{"region", cfg.AWS.Region, "us-east-1"},
		{"invoke identity", load.InvokeIdentityArn, "arn:aws:iam::000000000000:role/esmd"},
		{"dynamodb shape", items.Source.Generator.Shape, event.DynamoDB},
		{"dynamodb stream ARN", items.Source.StreamARN(), "arn:aws:dynamodb:us-east-1:000000000000:table/items/stream/1970-01-01T00:00:00.000"},
		{"explicit starting position", items.StartingPosition, "LATEST"},
		{"default batch size", items.BatchSize, 100},
		{"duration", items.Source.Generator.Duration, 30 * time.Second},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if c.got != c.want {
				t.Errorf("got %v, want %v", c.got, c.want)
			}
		})
	}
}
