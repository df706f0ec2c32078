package servers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// recordTB records the first Skip or Fatal instead of stopping the test.
type recordTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordTB) Helper()                        {}
func (r *recordTB) Logf(string, ...any)            {}
func (r *recordTB) Skip(args ...any)               { r.note(&r.skipped, args...) }
func (r *recordTB) Fatal(args ...any)              { r.note(&r.failed, args...) }
func (r *recordTB) Fatalf(format string, a ...any) { r.note(&r.failed, format) }
func (r *recordTB) note(dst *string, args ...any) {
	if r.skipped == "" && r.failed == "" && len(args) > 0 {
		*dst, _ = args[0].(string)
	}
}

func TestMissingServerSkipsOrFailsUnderCI(t *testing.T) {
	tests := []struct {
		ci          string
		wantSkipped string
		wantFailed  string
	}{
		{ci: "", wantSkipped: "kinesis-mock not installed: run bash test/install.sh"},
		{ci: "false", wantSkipped: "kinesis-mock not installed: run bash test/install.sh"},
		{ci: "true", wantFailed: "kinesis-mock not installed: run bash test/install.sh"},
	}
	for _, tc := range tests {
		t.Run("CI="+tc.ci, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			t.Setenv("ESMD_TOOLS", t.TempDir()) // empty: nothing installed
			s := &service{name: "kinesis-mock"}
			for call := range 2 { // the second call must give the same answer
				r := &recordTB{TB: t}
				s.get(r, func() ([]string, error) { return startWithRetry(startKinesisMock) })
				if r.skipped != tc.wantSkipped || r.failed != tc.wantFailed {
					t.Fatalf("call %d: skipped %q failed %q; want skipped %q failed %q", call, r.skipped, r.failed, tc.wantSkipped, tc.wantFailed)
				}
			}
		})
	}
}

func TestStartFailureIncludesLogTail(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "server.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho 'boom: cannot bind' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := startProc(proc{name: "broken", path: script, ready: func(ctxArg context.Context) error { return errors.New("not yet") }})
	if err == nil || !strings.Contains(err.Error(), "boom: cannot bind") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("err = %v; want the exit status and the log tail", err)
	}
}

func TestToolsDirFindsModuleRoot(t *testing.T) {
	t.Setenv("ESMD_TOOLS", "")
	got, err := toolsDir()
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd() // test/servers
	if want := filepath.Join(filepath.Dir(filepath.Dir(wd)), "test", ".tools"); got != want {
		t.Fatalf("toolsDir = %q, want %q", got, want)
	}
}
