package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/esmd-dev/esmd/config"
)

const validYAML = `functions:
  fn: {http: {url: "http://127.0.0.1:8080/"}}
logging: {format: json}
shutdownTimeout: 5s
mappings:
  - EventSourceArn: arn:aws:kinesis:us-east-1:123456789012:stream/a
    FunctionName: fn
    StartingPosition: LATEST
`

const invalidYAML = `functions:
  fn: {http: {url: "http://127.0.0.1:8080/"}}
mappings:
  - EventSourceArn: arn:aws:kinesis:us-east-1:123456789012:stream/a
    FunctionName: fn
    BatchSize: 20000
  - EventSourceArn: arn:aws:sqs:us-east-1:123456789012:q
    FunctionName: other
    ParallelizationFactor: 2
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCommands(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", validYAML)
	bad := writeFile(t, dir, "bad.yaml", invalidYAML)
	missing := filepath.Join(dir, "missing.yaml")
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderrHas  string
		stderrNone bool
	}{
		{name: "check valid", args: []string{"check", "-c", good}, code: 0, stdout: "ok: 1 mappings\n", stderrNone: true},
		{name: "check valid long flag", args: []string{"check", "--config", good}, code: 0, stdout: "ok: 1 mappings\n", stderrNone: true},
		{name: "check invalid", args: []string{"check", "-c", bad}, code: 1, stdout: bad + ": mappings[0].StartingPosition (line 4): is required for a Kinesis stream: TRIM_HORIZON, LATEST or AT_TIMESTAMP\n" +
			bad + ": mappings[0].BatchSize (line 6): 20000 is above the Kinesis maximum 10000\n" +
			bad + ": mappings[1].FunctionName (line 8): \"other\" is not defined under functions (defined: fn)\n" +
			bad + ": mappings[1].ParallelizationFactor (line 9): does not apply to an SQS queue (SQS concurrency is set by ScalingConfig.MaximumConcurrency)\n",
			stderrNone: true},
		{name: "check missing file", args: []string{"check", "-c", missing}, code: 1, stdout: "esmd: config: open " + missing + ": no such file or directory\n", stderrNone: true},
		{name: "check unknown flag", args: []string{"check", "-x"}, code: 2, stderrHas: "flag provided but not defined: -x"},
		{name: "check extra argument", args: []string{"check", "-c", good, "more"}, code: 2, stderrHas: `esmd check: unexpected argument "more"`},
		{name: "check help", args: []string{"check", "-h"}, code: 0, stderrHas: "configuration FILE"},
		{name: "run invalid", args: []string{"run", "-c", bad}, code: 1, stderrHas: bad + ": mappings[0].BatchSize (line 6): 20000 is above the Kinesis maximum 10000\n"},
		{name: "run missing file", args: []string{"run", "-c", missing}, code: 1, stderrHas: "no such file or directory"},
		{name: "run unknown flag", args: []string{"run", "-y"}, code: 2, stderrHas: "flag provided but not defined: -y"},
		{name: "version", args: []string{"version"}, code: 0, stdout: "esmd dev " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n", stderrNone: true},
		{name: "version extra", args: []string{"version", "x"}, code: 2, stderrHas: `unexpected argument "x"`},
		{name: "no command", args: nil, code: 2, stderrHas: "Usage:"},
		{name: "unknown command", args: []string{"serve"}, code: 2, stderrHas: `esmd: unknown command "serve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, &stdout, &stderr)
			}
			if tt.stdout != "" && stdout.String() != tt.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", &stdout, tt.stdout)
			}
			if tt.stderrHas != "" && !strings.Contains(stderr.String(), tt.stderrHas) {
				t.Errorf("stderr %q does not contain %q", &stderr, tt.stderrHas)
			}
			if tt.stderrNone && stderr.Len() > 0 {
				t.Errorf("unexpected stderr: %s", &stderr)
			}
		})
	}
}

func TestCheckDefaultsToEsmdYAML(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "esmd.yaml", validYAML)
	t.Chdir(dir)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check"}, &stdout, &stderr); code != 0 || stdout.String() != "ok: 1 mappings\n" {
		t.Errorf("code %d stdout %q stderr %q", code, &stdout, &stderr)
	}
}

func TestCheckExample(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-c", "../../examples/esmd.yaml"}, &stdout, &stderr); code != 0 || stdout.String() != "ok: 5 mappings\n" {
		t.Errorf("code %d stdout %q stderr %q", code, &stdout, &stderr)
	}
}

func TestHelpListsExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("code %d", code)
	}
	for _, want := range []string{"esmd run", "esmd check", "esmd version", "0  ok", "1  invalid", "2  usage error", "3  stopped hard"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help does not mention %q", want)
		}
	}
}

func TestNewLogger(t *testing.T) {
	tests := []struct {
		cfg        config.Logging
		debugShown bool
		infoShown  bool
		json       bool
	}{
		{config.Logging{Level: "debug", Format: "text"}, true, true, false},
		{config.Logging{Level: "info", Format: "json"}, false, true, true},
		{config.Logging{Level: "warn", Format: "text"}, false, false, false},
		{config.Logging{Level: "error", Format: "json"}, false, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.cfg.Level+"-"+tt.cfg.Format, func(t *testing.T) {
			var buf bytes.Buffer
			log := newLogger(tt.cfg, &buf)
			log.Debug("dbg")
			log.Info("inf")
			log.Error("err")
			out := buf.String()
			if got := strings.Contains(out, "dbg"); got != tt.debugShown {
				t.Errorf("debug shown = %v", got)
			}
			if got := strings.Contains(out, "inf"); got != tt.infoShown {
				t.Errorf("info shown = %v", got)
			}
			if got := strings.HasPrefix(out, "{"); got != tt.json {
				t.Errorf("json = %v: %s", got, out)
			}
		})
	}
}

func testConfig(timeout time.Duration) *config.Config {
	d := config.Duration(timeout)
	return &config.Config{ShutdownTimeout: &d}
}

// TestServe drives serve with a fake daemon and a fake signal channel, in
// a synctest bubble so shutdownTimeout passes in fake time.
func TestServe(t *testing.T) {
	errBoom := errors.New("boom")
	var stuck chan struct{} // made in each bubble, closed when its test ends
	tests := []struct {
		name    string
		signals int
		daemon  daemonFunc
		code    int
		elapsed time.Duration
	}{
		{
			name: "drain completes", signals: 1, code: exitOK, elapsed: 2 * time.Second,
			daemon: func(ctx context.Context, _ *config.Config, _ *slog.Logger, drain <-chan struct{}) error {
				<-drain
				time.Sleep(2 * time.Second) // fake time: the drain takes 2s
				if ctx.Err() != nil {
					return errors.New("ctx cancelled during a drain within shutdownTimeout")
				}
				return nil
			},
		},
		{
			name: "drain times out", signals: 1, code: exitHardStop, elapsed: 5 * time.Second,
			daemon: func(ctx context.Context, _ *config.Config, _ *slog.Logger, drain <-chan struct{}) error {
				<-drain
				<-ctx.Done()
				return ctx.Err()
			},
		},
		{
			name: "second signal stops at once", signals: 2, code: exitHardStop, elapsed: 0,
			daemon: func(ctx context.Context, _ *config.Config, _ *slog.Logger, drain <-chan struct{}) error {
				<-ctx.Done()
				return nil
			},
		},
		{
			name: "daemon fails", signals: 0, code: exitFailure, elapsed: 0,
			daemon: func(context.Context, *config.Config, *slog.Logger, <-chan struct{}) error { return errBoom },
		},
		{
			name: "daemon fails during drain", signals: 1, code: exitFailure, elapsed: time.Second,
			daemon: func(_ context.Context, _ *config.Config, _ *slog.Logger, drain <-chan struct{}) error {
				<-drain
				time.Sleep(time.Second)
				return errBoom
			},
		},
		{
			name: "daemon ends by itself", signals: 0, code: exitOK, elapsed: 0,
			daemon: func(context.Context, *config.Config, *slog.Logger, <-chan struct{}) error { return nil },
		},
		{
			name: "daemon ignores the hard stop", signals: 2, code: exitHardStop, elapsed: hardStopGrace,
			daemon: func(context.Context, *config.Config, *slog.Logger, <-chan struct{}) error {
				<-stuck // returns only after serve gave up on it
				return nil
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				stuck = make(chan struct{})
				defer close(stuck)
				sigs := make(chan os.Signal, 2)
				for range tt.signals {
					sigs <- syscall.SIGTERM
				}
				var logs bytes.Buffer
				start := time.Now()
				code := serve(t.Context(), testConfig(5*time.Second), slog.New(slog.NewTextHandler(&logs, nil)), sigs, tt.daemon)
				if code != tt.code {
					t.Errorf("exit code %d, want %d\n%s", code, tt.code, &logs)
				}
				if got := time.Since(start); got != tt.elapsed {
					t.Errorf("took %v, want %v", got, tt.elapsed)
				}
			})
		})
	}
}

func TestServeDrainOnlyAfterFirstSignal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sigs := make(chan os.Signal)
		drained := make(chan struct{})
		var drainClosedAt, cancelledAt time.Duration
		start := time.Now()
		d := func(ctx context.Context, _ *config.Config, _ *slog.Logger, drain <-chan struct{}) error {
			<-drain
			drainClosedAt = time.Since(start)
			close(drained)
			<-ctx.Done()
			cancelledAt = time.Since(start)
			return nil
		}
		done := make(chan int)
		go func() {
			done <- serve(t.Context(), testConfig(time.Minute), slog.New(slog.DiscardHandler), sigs, d)
		}()
		time.Sleep(10 * time.Second)
		sigs <- syscall.SIGINT
		<-drained
		time.Sleep(3 * time.Second)
		sigs <- syscall.SIGTERM
		if code := <-done; code != exitHardStop {
			t.Errorf("exit code %d", code)
		}
		if drainClosedAt != 10*time.Second || cancelledAt != 13*time.Second {
			t.Errorf("drain at %v, cancel at %v; want 10s and 13s", drainClosedAt, cancelledAt)
		}
	})
}

// TestRunCommand runs "esmd run" end to end with a fake daemon and an
// injected signal channel.
func TestRunCommand(t *testing.T) {
	path := writeFile(t, t.TempDir(), "esmd.yaml", validYAML)
	sigs := make(chan os.Signal, 1)
	unsubscribed := false
	var gotCfg *config.Config
	oldDaemon, oldNotify := daemon, notifySignals
	t.Cleanup(func() { daemon, notifySignals = oldDaemon, oldNotify })
	notifySignals = func() (<-chan os.Signal, func()) { return sigs, func() { unsubscribed = true } }
	daemon = func(ctx context.Context, cfg *config.Config, log *slog.Logger, drain <-chan struct{}) error {
		gotCfg = cfg
		log.Info("fake daemon running")
		sigs <- syscall.SIGTERM
		<-drain
		return nil
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"run", "-c", path}, &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d\n%s", code, &stderr)
	}
	if gotCfg == nil || len(gotCfg.Mappings) != 1 || gotCfg.ShutdownTimeout.Std() != 5*time.Second {
		t.Errorf("daemon got config %v", gotCfg)
	}
	if !unsubscribed {
		t.Error("signals were not released")
	}
	for _, want := range []string{`"msg":"esmd starting"`, `"msg":"fake daemon running"`, `"msg":"draining","signal":"terminated"`, `"msg":"esmd stopped"`} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, &stderr)
		}
	}
}
