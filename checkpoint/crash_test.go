package checkpoint

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/event"
)

// The helper process: when helperEnv is set, TestHelperProcess runs the mode
// it names against the file in helperFileEnv, prints to stdout, and exits.
const (
	helperEnv     = "ESMD_CHECKPOINT_HELPER"
	helperFileEnv = "ESMD_CHECKPOINT_HELPER_FILE"

	crashMapping = "orders"
	crashShards  = 8
)

func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	path := os.Getenv(helperFileEnv)
	switch mode {
	case "save-loop":
		helperSaveLoop(path)
	case "file-size-limit":
		helperFileSizeLimit(path)
	default:
		fmt.Fprintf(os.Stderr, "unknown helper mode %q\n", mode)
		os.Exit(2)
	}
	os.Exit(0)
}

// helperSaveLoop saves rising positions for crashShards shards from as many
// goroutines, each continuing from what is stored, and prints
// "saved SHARD SEQ FINISHED" after each Save returns. It runs until killed.
func helperSaveLoop(path string) {
	f, err := OpenFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	ctx := context.Background()
	var out sync.Mutex
	var wg sync.WaitGroup
	for s := range crashShards {
		wg.Go(func() {
			shard := fmt.Sprintf("shardId-%012d", s)
			p, err := f.Load(ctx, crashMapping, shard)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(3)
			}
			seq, _ := strconv.ParseUint(p.Seq, 10, 64)
			for {
				seq++
				p := event.Position{Seq: strconv.FormatUint(seq, 10), Finished: seq%5 == 0}
				if err := f.Save(ctx, crashMapping, shard, p); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(3)
				}
				out.Lock()
				fmt.Fprintf(os.Stdout, "saved %s %d %t\n", shard, seq, p.Finished)
				out.Unlock()
			}
		})
	}
	wg.Wait()
}

// helperFileSizeLimit caps the size of files this process may write, then
// saves positions of ever more shards with long ids until a Save fails, as
// on a full disk. It prints "saved SHARD" for each Save that returned nil,
// "failed SHARD ERROR" for the one that failed, and "loaded SHARD SEQ" for
// what Load returns afterwards for the failed shard.
func helperFileSizeLimit(path string) {
	const limit = 256 << 10
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		os.Exit(3)
	}
	f, err := OpenFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	ctx := context.Background()
	pad := strings.Repeat("x", 1000)
	for i := 0; i < 10000; i++ {
		shard := fmt.Sprintf("%s-%05d", pad, i)
		err := f.Save(ctx, crashMapping, shard, event.Position{Seq: strconv.Itoa(i)})
		if err != nil {
			fmt.Printf("failed %s %s\n", shard, strings.ReplaceAll(err.Error(), "\n", " "))
			p, lerr := f.Load(ctx, crashMapping, shard)
			if lerr != nil {
				fmt.Fprintln(os.Stderr, "load:", lerr)
				os.Exit(3)
			}
			fmt.Printf("loaded %s %q\n", shard, p.Seq)
			_ = f.Close()
			return
		}
		fmt.Printf("saved %s\n", shard)
	}
	fmt.Fprintln(os.Stderr, "no Save failed")
	os.Exit(3)
}

func helperCommand(t *testing.T, mode, path string) *exec.Cmd {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperFileEnv+"="+path)
	cmd.Stderr = os.Stderr
	return cmd
}

// TestKill9 kills a process that is saving positions at a random moment,
// several times over one file, and checks after each kill that every
// position the process reported saved is in the file (or a later one).
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := filepath.Join(t.TempDir(), "cp.db")
	type saved struct {
		seq      uint64
		finished bool
	}
	last := map[string]saved{} // highest reported save per shard, over all rounds
	for round := range 5 {
		cmd := helperCommand(t, "save-loop", path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		killAfter := time.Duration(20+rand.IntN(400)) * time.Millisecond
		var kill <-chan time.Time
		count := 0
		for line := range lines {
			if kill == nil {
				kill = time.After(killAfter) // measured from the first save
			}
			select {
			case <-kill:
				_ = cmd.Process.Kill() // SIGKILL
				kill = make(chan time.Time)
			default:
			}
			var (
				shard    string
				seq      uint64
				finished bool
			)
			if _, err := fmt.Sscanf(line, "saved %s %d %t", &shard, &seq, &finished); err != nil {
				t.Fatalf("round %d: bad helper line %q: %v", round, line, err)
			}
			count++
			if seq <= last[shard].seq {
				t.Fatalf("round %d: %s saved %d after %d: the helper did not resume from its checkpoint", round, shard, seq, last[shard].seq)
			}
			last[shard] = saved{seq, finished}
		}
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: helper ended with %v, want killed by SIGKILL", round, err)
		}
		t.Logf("round %d: killed after %s and %d reported saves", round, killAfter, count)

		f, err := OpenFile(path)
		if err != nil {
			t.Fatalf("round %d: reopen after kill: %v", round, err)
		}
		all, err := f.All(t.Context(), crashMapping)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		for shard, want := range last {
			got, ok := all[shard]
			if !ok {
				t.Fatalf("round %d: %s reported saved at %d, but the file has nothing", round, shard, want.seq)
			}
			seq, err := strconv.ParseUint(got.Seq, 10, 64)
			if err != nil {
				t.Fatalf("round %d: %s: stored seq %q: %v", round, shard, got.Seq, err)
			}
			if seq < want.seq {
				t.Fatalf("round %d: %s reported saved at %d, but the file has %d", round, shard, want.seq, seq)
			}
			if got.Finished != (seq%5 == 0) {
				t.Fatalf("round %d: %s at %d: finished = %t", round, shard, seq, got.Finished)
			}
			if seq == want.seq && got.Finished != want.finished {
				t.Fatalf("round %d: %s: finished = %t, reported %t", round, shard, got.Finished, want.finished)
			}
		}
		if len(last) != crashShards {
			t.Fatalf("round %d: %d shards reported saves, want %d", round, len(last), crashShards)
		}
		// The next round resumes from the file; start it from what is there.
		for shard, p := range all {
			seq, _ := strconv.ParseUint(p.Seq, 10, 64)
			last[shard] = saved{seq, p.Finished}
		}
	}
}

// TestSaveFileSizeLimit makes writes fail like on a full disk (a process file
// size limit gives EFBIG) and checks that Save returns the error naming the
// file, that the failed position is not reported by Load, and that the file
// still opens with every position that was reported saved.
func TestSaveFileSizeLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	path := filepath.Join(t.TempDir(), "cp.db")
	out, err := helperCommand(t, "file-size-limit", path).Output()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var (
		ok              []string
		failed, loaded  string
		failErr, loadSq string
	)
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSuffix(line, "\n")
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "saved":
			ok = append(ok, rest)
		case "failed":
			failed, failErr, _ = strings.Cut(rest, " ")
		case "loaded":
			loaded, loadSq, _ = strings.Cut(rest, " ")
		default:
			t.Fatalf("bad helper line %q", line)
		}
	}
	if failed == "" || len(ok) == 0 {
		t.Fatalf("helper saved %d and failed %q; want some saves, then a failure", len(ok), failed)
	}
	t.Logf("%d saves, then: …%s", len(ok), failErr[max(0, len(failErr)-100):])
	for _, s := range []string{path, "file too large"} {
		if !strings.Contains(failErr, s) {
			t.Errorf("Save error %q does not contain %q", failErr, s)
		}
	}
	if loaded != failed || loadSq != `""` {
		t.Errorf("after the failed Save, Load(%s) = %s, want an empty position", loaded, loadSq)
	}

	f, err := OpenFile(path)
	if err != nil {
		t.Fatalf("reopen after failed Save: %v", err)
	}
	defer f.Close()
	all, err := f.All(t.Context(), crashMapping)
	if err != nil {
		t.Fatal(err)
	}
	for i, shard := range ok {
		if got := all[shard]; got.Seq != strconv.Itoa(i) {
			t.Errorf("shard %d reported saved, file has %+v", i, got)
		}
	}
	if p, found := all[failed]; found {
		t.Errorf("failed save is in the file: %+v", p)
	}
	if len(all) != len(ok) {
		t.Errorf("file has %d shards, %d were reported saved", len(all), len(ok))
	}
	// The store works again once writes can succeed.
	if err := f.Save(t.Context(), crashMapping, failed, event.Position{Seq: "1"}); err != nil {
		t.Errorf("Save after the limit is gone: %v", err)
	}
}
