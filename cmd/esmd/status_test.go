package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/esmd-dev/esmd/admin"
	"github.com/esmd-dev/esmd/mapping"
)

// statusServer serves two mappings on a free loopback port with token.
func statusServer(t *testing.T, token string) string {
	t.Helper()
	k := admin.Mapping{Name: "orders-stream", UUID: "u-kinesis", SourceKind: "kinesis", Enabled: true, Stats: &mapping.Stats{},
		Status: func() mapping.Status {
			return mapping.Status{State: "Enabled", LastProcessingResult: "OK", Healthy: false, ShardsFinished: 1,
				Shards: []mapping.ShardStatus{{ID: "shardId-0", IteratorAgeMillis: 1500}, {ID: "shardId-1", IteratorAgeMillis: 250, ReadFailing: true}}}
		}}
	q := admin.Mapping{Name: "jobs-queue", UUID: "u-sqs", SourceKind: "sqs", Enabled: true, SQS: &mapping.SQSStats{},
		Status: func() mapping.Status {
			return mapping.Status{State: "Enabled", LastProcessingResult: "No records processed", Healthy: true}
		}}
	q.SQS.Concurrency.Store(5)
	q.Stats = &q.SQS.Stats
	off := admin.Mapping{Name: "old", UUID: "u-off", SourceKind: "dynamodb"}
	srv := admin.New(admin.Config{Listen: "127.0.0.1:0", AuthToken: token}, admin.Static{k, q, off})
	addr, err := srv.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(t.Context()) })
	return addr
}

func statusConfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "esmd.yaml")
	yaml := `functions:
  fn:
    http: {url: "http://127.0.0.1:8080/"}
server: ` + server + `
mappings:
  - EventSourceArn: arn:aws:kinesis:us-east-1:123456789012:stream/orders
    FunctionName: fn
    StartingPosition: LATEST
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestStatus(t *testing.T) {
	addr := statusServer(t, "s3cret")
	good := statusConfig(t, fmt.Sprintf("{listen: %q, authToken: s3cret}", addr))
	wrongToken := statusConfig(t, fmt.Sprintf("{listen: %q, authToken: nope}", addr))
	off := statusConfig(t, `{listen: "off"}`)
	down := statusConfig(t, fmt.Sprintf("{listen: %q}", closedPort(t)))
	table := []string{
		"NAME           UUID       SOURCE    STATE                     LAST RESULT           SHARDS                   ITERATOR AGE",
		"orders-stream  u-kinesis  kinesis   Enabled (source failing)  OK                    2 (+1 done) (1 failing)  1.5s",
		"jobs-queue     u-sqs      sqs       Enabled                   No records processed  5 pollers                -",
		"old            u-off      dynamodb  Disabled                  No records processed  -                        -",
	}
	tests := []struct {
		name      string
		args      []string
		code      int
		stdout    []string
		stderrHas string
	}{
		{name: "from config", args: []string{"-c", good}, code: 0, stdout: table},
		{name: "addr overrides a disabled server", args: []string{"-c", off, "--addr", addr}, code: 1, stderrHas: "401"},
		{name: "wrong token", args: []string{"-c", wrongToken}, code: 1, stderrHas: "401 Unauthorized"},
		{name: "server off", args: []string{"-c", off}, code: 1, stderrHas: "disables the server"},
		{name: "not running", args: []string{"-c", down}, code: 1, stderrHas: "esmd is not reachable at http://" + closedAddr(down)},
		{name: "missing explicit file", args: []string{"-c", filepath.Join(t.TempDir(), "none.yaml"), "--addr", addr}, code: 1, stderrHas: "no such file"},
		{name: "bad flag", args: []string{"--nope"}, code: 2},
		{name: "extra argument", args: []string{"-c", good, "x"}, code: 2, stderrHas: "unexpected argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(append([]string{"status"}, tc.args...), &out, &errb)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out.String(), errb.String())
			}
			if tc.stdout != nil {
				var got []string
				for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
					got = append(got, strings.TrimRight(l, " "))
				}
				want := make([]string, len(tc.stdout))
				for i, l := range tc.stdout {
					want[i] = strings.TrimRight(l, " ")
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("stdout:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}
			if !strings.Contains(errb.String(), tc.stderrHas) {
				t.Errorf("stderr %q does not contain %q", errb.String(), tc.stderrHas)
			}
		})
	}
}

// closedAddr reads back the listen address written into a status config.
func closedAddr(path string) string {
	b, _ := os.ReadFile(path)
	s := string(b)
	i := strings.Index(s, `listen: "`)
	if i < 0 {
		return ""
	}
	s = s[i+len(`listen: "`):]
	return s[:strings.IndexByte(s, '"')]
}

func TestDialAddr(t *testing.T) {
	tests := map[string]string{
		"127.0.0.1:9400": "127.0.0.1:9400",
		"0.0.0.0:9400":   "127.0.0.1:9400",
		":9400":          "127.0.0.1:9400",
		"[::]:9400":      "[::1]:9400",
		"host:1":         "host:1",
	}
	for in, want := range tests {
		if got := dialAddr(in); got != want {
			t.Errorf("dialAddr(%q) = %q, want %q", in, got, want)
		}
	}
}
