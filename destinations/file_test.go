package destinations

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestFileConcurrentSends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "failures.jsonl")
	d, err := NewFile("file://"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Distinct failures of very different sizes, so that torn or
	// interleaved writes would show.
	const n = 64
	want := make(map[string]bool, n)
	fails := make([][]byte, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		f := testFailure()
		f.RequestID = "req-" + strconv.Itoa(i)
		f.FunctionARN += string(bytes.Repeat([]byte("x"), i*997))
		b, err := f.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		fails[i] = b
		want[string(b)] = true
		wg.Go(func() { errs <- d.Send(t.Context(), f) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	sc := bufio.NewScanner(fh)
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		if !want[sc.Text()] {
			t.Fatalf("line %d is not one of the failures' JSON: %.200s", lines, sc.Text())
		}
		delete(want, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines != n || len(want) != 0 {
		t.Errorf("%d lines, %d failures missing; want %d lines, none missing", lines, len(want), n)
	}

	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", st.Mode().Perm())
	}
}

func TestFileAppendsToExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failures.jsonl")
	if err := os.WriteFile(path, []byte("{\"old\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := NewFile("file://"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send(t.Context(), testFailure()); err != nil {
		t.Fatal(err)
	}
	// Rotation: the file is moved away; the next send starts a new one.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(t.Context(), testFailure()); err != nil {
		t.Fatal(err)
	}
	line := string(goldenBytes(t, "kinesis_failure.golden.json")) + "\n"
	for name, want := range map[string]string{path + ".1": "{\"old\":1}\n" + line, path: line} {
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s holds %q, want %q", filepath.Base(name), got, want)
		}
	}
}

func TestFileRelativePath(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	d, err := NewFile("file://out/failures.jsonl", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "out", "failures.jsonl"); d.Path() != want {
		t.Errorf("Path() = %q, want %q", d.Path(), want)
	}
}

func TestFileErrors(t *testing.T) {
	t.Run("cancelled context writes nothing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "failures.jsonl")
		d, _ := NewFile("file://"+path, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := d.Send(ctx, testFailure()); !errors.Is(err, context.Canceled) {
			t.Fatalf("Send = %v, want context.Canceled", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("file exists after a cancelled send: %v", err)
		}
	})
	t.Run("unwritable path is transient", func(t *testing.T) {
		dir := t.TempDir()
		blocker := filepath.Join(dir, "not-a-dir")
		if err := os.WriteFile(blocker, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		d, _ := NewFile("file://"+filepath.Join(blocker, "failures.jsonl"), nil)
		err := d.Send(t.Context(), testFailure())
		if err == nil || isPermanent(err) {
			t.Fatalf("Send = %v, want a transient error", err)
		}
		// Once the operator fixes the path, the same destination works.
		if err := os.Remove(blocker); err != nil {
			t.Fatal(err)
		}
		if err := d.Send(t.Context(), testFailure()); err != nil {
			t.Fatalf("Send after the fix: %v", err)
		}
	})
}

// TestFilePartialLine: a writer killed mid-write leaves a line without its
// newline. The next Send cuts it off, so that the file holds whole lines
// only and the new record is a line of its own, and warns.
func TestFilePartialLine(t *testing.T) {
	whole := "{\"old\":1}\n{\"old\":2}\n"
	big := strings.Repeat("x", 200<<10) // the fragment spans several reads
	tests := []struct {
		name, before, kept string
	}{
		{"whole lines", whole, whole},
		{"a fragment after whole lines", whole + `{"requestContext":{"requestId":"cut`, whole},
		{"a long fragment", whole + `{"pad":"` + big, whole},
		{"a long line, then a fragment", `{"pad":"` + big + "\"}\n" + `{"cut`, `{"pad":"` + big + "\"}\n"},
		{"only a fragment", `{"cut`, ""},
		{"empty", "", ""},
	}
	line := string(goldenBytes(t, "kinesis_failure.golden.json")) + "\n"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "failures.jsonl")
			if err := os.WriteFile(path, []byte(tc.before), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			d, err := NewFile("file://"+path, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Send(t.Context(), testFailure()); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.kept + line; string(got) != want {
				t.Errorf("the file holds %d bytes ending %q, want %d ending %q", len(got), tail(got), len(want), tail([]byte(want)))
			}
			cut := len(tc.before) - len(tc.kept)
			warned := strings.Contains(logs.String(), "partial line") && strings.Contains(logs.String(), "bytes_cut="+strconv.Itoa(cut))
			if warned != (cut > 0) {
				t.Errorf("cut %d bytes; log:\n%s", cut, logs.String())
			}
		})
	}
}

func tail(b []byte) []byte { return b[max(0, len(b)-40):] }

// TestFileLockHonoursContext: while another holder keeps the file's lock
// (another esmd on a stalled disk, an operator's flock), Send waits, and
// gives up when its context ends; once the lock is free it appends.
func TestFileLockHonoursContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failures.jsonl")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	holder, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	d, err := NewFile("file://"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = d.Send(ctx, testFailure())
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("Send while the lock is held = %v after %s; want the context's deadline, at once", err, time.Since(start))
	}
	if err := syscall.Flock(int(holder.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	if err := d.Send(t.Context(), testFailure()); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(path); string(got) != string(goldenBytes(t, "kinesis_failure.golden.json"))+"\n" {
		t.Errorf("the file holds %q, want the one record the second Send wrote", got)
	}
}
