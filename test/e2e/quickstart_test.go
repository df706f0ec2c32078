package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/config"
	"github.com/esmd-dev/esmd/event"
	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/generator"
)

// TestQuickstart runs examples/quickstart.sh as a user would (with a smaller
// count and a faster rate) and checks what it shows: batches processed,
// poison records bisected, and a failure record for exactly each poison
// record of the generator's seeded sequence.
func TestQuickstart(t *testing.T) {
	out := t.TempDir()
	env := map[string]string{
		"QUICKSTART_OUT":   out,
		"QUICKSTART_COUNT": "3000",
		"QUICKSTART_RATE":  "1000",
		"QUICKSTART_SEED":  "11",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}

	// The poison records the quickstart's generator makes with this seed.
	cfg, err := config.Load("../../examples/quickstart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	spec := cfg.Mappings[0].Settings().Source.Generator
	src, err := generator.New(generator.Config{Spec: *spec})
	if err != nil {
		t.Fatal(err)
	}
	var poison []string
	shards, _ := src.Shards(context.Background())
	for _, sh := range shards {
		r, _ := src.Open(context.Background(), sh, event.Start{Type: event.TrimHorizon})
		for {
			res, err := r.Read(context.Background())
			if errors.Is(err, mapping.ErrShardClosed) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range res.Records {
				if generator.ParseDataOf(rec).Poison {
					poison = append(poison, sh.ID+"/"+rec.Seq)
				}
			}
		}
	}
	if len(poison) == 0 {
		t.Fatal("the seed makes no poison record: pick another")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "../../examples/quickstart.sh")
	cmd.Env = append(os.Environ(), "AWS_EC2_METADATA_DISABLED=true")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	runErr := cmd.Run()
	output := buf.String()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("quickstart output:\n%s", lastLines(output, 80))
		}
	})
	if runErr != nil {
		t.Fatalf("quickstart.sh: %v", runErr)
	}
	t.Logf("quickstart took %s", time.Since(start).Round(time.Millisecond))

	// The handler runs under esmd (a function of kind runtime): esmd logs
	// each line it prints, quoted.
	for _, want := range []string{
		`msg="handler output" function=handler`,
		`msg=\"batch processed\" app=handler`,
		`msg="function error, bisecting batch"`,
		`msg=\"batch failed: poison record\"`,
		"handler: all 3000 records seen",
		"quickstart: esmd exited with code 0",
	} {
		if !strings.Contains(output, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	if n := strings.Count(output, `msg=\"batch processed\" app=handler`); n < 30 {
		t.Errorf("%d batches processed, want at least 3000/100", n)
	}

	f, err := os.Open(filepath.Join(out, "failures.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			RequestContext struct {
				Condition string `json:"condition"`
			} `json:"requestContext"`
			BatchInfo struct {
				ShardID   string `json:"shardId"`
				Start     string `json:"startSequenceNumber"`
				End       string `json:"endSequenceNumber"`
				BatchSize int    `json:"batchSize"`
				StreamARN string `json:"streamArn"`
			} `json:"KinesisBatchInfo"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("failure record %s: %v", sc.Bytes(), err)
		}
		b := rec.BatchInfo
		if b.BatchSize != 1 || b.Start != b.End || rec.RequestContext.Condition != "RetryAttemptsExhausted" ||
			b.StreamARN != "arn:aws:kinesis:us-east-1:000000000000:stream/quickstart" {
			t.Errorf("failure record %s: want one poison record, retries exhausted", sc.Bytes())
		}
		got = append(got, b.ShardID+"/"+b.Start)
	}
	slices.Sort(got)
	slices.Sort(poison)
	if !slices.Equal(got, poison) {
		t.Fatalf("failure records for %v, want exactly the poison records %v", got, poison)
	}
	if want := "quickstart: " + strconv.Itoa(len(poison)) + " failure record(s)"; !strings.Contains(output, want) {
		t.Errorf("the output lacks %q", want)
	}
}
