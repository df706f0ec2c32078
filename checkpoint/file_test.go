package checkpoint

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"

	"github.com/esmd-dev/esmd/event"
)

func openTemp(t testing.TB) (*File, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state", "esmd.db")
	return mustOpen(t, path), path
}

// mustOpen opens path and closes the File when the test ends.
func mustOpen(t testing.TB, path string, opts ...Option) *File {
	t.Helper()
	f, err := OpenFile(path, opts...)
	if err != nil {
		t.Fatalf("OpenFile: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// saveSeqs saves the sequence numbers from..to of shard s of mapping m.
func saveSeqs(t testing.TB, f *File, from, to int) {
	t.Helper()
	for i := from; i <= to; i++ {
		if err := f.Save(t.Context(), "m", "s", event.Position{Seq: fmt.Sprint(i)}); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
}

// wantReopened opens path again and checks that m/s holds seq.
func wantReopened(t testing.TB, path, seq string) {
	t.Helper()
	g := mustOpen(t, path)
	if p, _ := g.Load(t.Context(), "m", "s"); p.Seq != seq {
		t.Errorf("reopened: %+v, want seq %s", p, seq)
	}
}

// wantLocked checks that another OpenFile of path is refused as locked.
func wantLocked(t testing.TB, path, when string) {
	t.Helper()
	if g, err := OpenFile(path, WithLockTimeout(100*time.Millisecond)); !errors.Is(err, ErrLocked) {
		if err == nil {
			g.Close()
		}
		t.Fatalf("OpenFile %s = %v, want ErrLocked", when, err)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	long := strings.Repeat("9", 128)
	pinned := time.Date(2026, 12, 3, 19, 46, 4, 123_000_000, time.UTC)
	tests := []struct {
		name    string
		mapping string
		shard   string
		saves   []event.Position
		want    event.Position
	}{
		{name: "seq", mapping: "m1", shard: "shardId-000000000000",
			saves: []event.Position{{Seq: "49590338271490256608559692538361571095921575989136588898"}},
			want:  event.Position{Seq: "49590338271490256608559692538361571095921575989136588898"}},
		{name: "128 digits", mapping: "m1", shard: "shardId-000000000001",
			saves: []event.Position{{Seq: long}}, want: event.Position{Seq: long}},
		{name: "finished with seq", mapping: "m1", shard: "shardId-000000000002",
			saves: []event.Position{{Seq: "100"}, {Seq: "200", Finished: true}},
			want:  event.Position{Seq: "200", Finished: true}},
		{name: "finished without seq", mapping: "m1", shard: "shardId-000000000003",
			saves: []event.Position{{Finished: true}}, want: event.Position{Finished: true}},
		{name: "last save wins", mapping: "m2", shard: "shardId-000000000000",
			saves: []event.Position{{Seq: "5"}, {Seq: "7"}, {Seq: "6"}},
			want:  event.Position{Seq: "6"}},
		{name: "same shard id in another mapping", mapping: "m3", shard: "shardId-000000000000",
			saves: []event.Position{{Seq: "1"}}, want: event.Position{Seq: "1"}},
		{name: "zero position", mapping: "m4", shard: "s",
			saves: []event.Position{{Seq: "3"}, {}}, want: event.Position{}},
		{name: "never saved", mapping: "m5", shard: "s", want: event.Position{}},
		{name: "since", mapping: "m6", shard: "s1",
			saves: []event.Position{{Since: pinned}}, want: event.Position{Since: pinned}},
		{name: "since, then a seq", mapping: "m6", shard: "s2",
			saves: []event.Position{{Since: pinned}, {Seq: "12"}}, want: event.Position{Seq: "12"}},
		{name: "since, finished", mapping: "m6", shard: "s3",
			saves: []event.Position{{Since: pinned}, {Since: pinned, Finished: true}}, want: event.Position{Since: pinned, Finished: true}},
	}
	f, path := openTemp(t)
	ctx := t.Context()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, p := range tc.saves {
				if err := f.Save(ctx, tc.mapping, tc.shard, p); err != nil {
					t.Fatalf("Save(%+v): %v", p, err)
				}
			}
			got, err := f.Load(ctx, tc.mapping, tc.shard)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Load (-want +got):\n%s", diff)
			}
		})
	}

	// Everything survives a reopen.
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	f2 := mustOpen(t, path)
	for _, tc := range tests {
		got, err := f2.Load(ctx, tc.mapping, tc.shard)
		if err != nil {
			t.Fatalf("Load after reopen %s: %v", tc.name, err)
		}
		if got != tc.want {
			t.Errorf("after reopen %s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	all, err := f2.All(ctx, "m1")
	if err != nil {
		t.Fatalf("All: %v", err)
	}
	wantAll := map[string]event.Position{
		"shardId-000000000000": {Seq: "49590338271490256608559692538361571095921575989136588898"},
		"shardId-000000000001": {Seq: long},
		"shardId-000000000002": {Seq: "200", Finished: true},
		"shardId-000000000003": {Finished: true},
	}
	if diff := cmp.Diff(wantAll, all); diff != "" {
		t.Errorf("All (-want +got):\n%s", diff)
	}
	none, err := f2.All(ctx, "nope")
	if err != nil || none == nil || len(none) != 0 {
		t.Errorf("All of unknown mapping = %v, %v; want empty map", none, err)
	}
	names, err := f2.Mappings(ctx)
	if err != nil {
		t.Fatalf("Mappings: %v", err)
	}
	if diff := cmp.Diff([]string{"m1", "m2", "m3", "m4", "m6"}, names); diff != "" {
		t.Errorf("Mappings (-want +got):\n%s", diff)
	}
}

// TestDecodeRefuses: position values this esmd cannot read are errors, never
// a misread position.
func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name, val, want string
	}{
		{"empty", "", "empty position value"},
		{"no flags", "\x01", "too short"},
		{"unknown flag", "\x01\x04123", "unknown flags 0x4"},
		{"since cut short", "\x01\x02\x00\x00\x01", "too short for its since time"},
		{"unknown version", "\x02\x00", "unknown encoding version 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decode([]byte(tc.val))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decode(%q) = %+v, %v; want an error saying %q", tc.val, p, err, tc.want)
			}
		})
	}
}

// TestCreateLeavesAWholeFile: a new file gets its name only once it holds
// a header, so a crash right after the creation leaves a file that opens as
// new, and no temporary file is left.
func TestCreateLeavesAWholeFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.db")
	fh, created, err := openLocked(path, time.Second)
	if err != nil || !created {
		t.Fatalf("openLocked of a new file: created %t, %v", created, err)
	}
	fh.Close() // a crash before load's rewrite
	b, err := os.ReadFile(path)
	if err != nil || checkHeader(b) != nil || len(b) != headerLen {
		t.Fatalf("the new file holds %d bytes (%v); want a header alone", len(b), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the folder holds %d entries, want the file alone", len(entries))
	}
	f := mustOpen(t, path)
	if all, err := f.All(t.Context(), "m"); err != nil || len(all) != 0 {
		t.Errorf("All = %v, %v; want no positions", all, err)
	}
	f.Close()
}

func TestOpenFileCreatesPrivateFileAndFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "cp.db")
	f := mustOpen(t, path)
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{dir, 0o700 | os.ModeDir}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
	}
	if f.Path() != path {
		t.Errorf("Path() = %q, want %q", f.Path(), path)
	}
}

func TestSaveConcurrentShards(t *testing.T) {
	f, path := openTemp(t)
	ctx := t.Context()
	const (
		workers = 100
		saves   = 30
	)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			m := fmt.Sprintf("mapping-%d", w%3)
			shard := fmt.Sprintf("shardId-%012d", w)
			for i := 1; i <= saves; i++ {
				p := event.Position{Seq: fmt.Sprint(i), Finished: i == saves && w%2 == 0}
				if err := f.Save(ctx, m, shard, p); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Writers to one shared key: the last value each one wrote is one of
	// theirs, and the store ends on a whole value.
	for w := range 4 {
		wg.Go(func() {
			for i := 1; i <= saves; i++ {
				if err := f.Save(ctx, "shared", "s", event.Position{Seq: fmt.Sprintf("%d%03d", w, i)}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Save: %v", err)
	}
	check := func(f *File) {
		t.Helper()
		total := 0
		for m := range 3 {
			all, err := f.All(ctx, fmt.Sprintf("mapping-%d", m))
			if err != nil {
				t.Fatal(err)
			}
			total += len(all)
			for shard, p := range all {
				var w int
				if _, err := fmt.Sscanf(shard, "shardId-%d", &w); err != nil {
					t.Fatalf("unexpected shard %q", shard)
				}
				want := event.Position{Seq: fmt.Sprint(saves), Finished: w%2 == 0}
				if p != want {
					t.Errorf("%s: got %+v, want %+v", shard, p, want)
				}
			}
		}
		if total != workers {
			t.Errorf("%d shards stored, want %d", total, workers)
		}
		p, err := f.Load(ctx, "shared", "s")
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Seq) != 4 || !strings.HasSuffix(p.Seq, fmt.Sprintf("%03d", saves)) {
			t.Errorf("shared key = %+v, want some writer's last save", p)
		}
	}
	check(f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	f2 := mustOpen(t, path)
	check(f2)
}

func TestSaveErrors(t *testing.T) {
	f, _ := openTemp(t)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		mapping string
		shard   string
		wantIs  error
		wantSub string
	}{
		{name: "empty mapping", ctx: t.Context(), mapping: "", shard: "s", wantSub: "empty mapping name"},
		{name: "empty shard", ctx: t.Context(), mapping: "m", shard: "", wantSub: "empty shard id"},
		{name: "shard too long", ctx: t.Context(), mapping: "m", shard: strings.Repeat("x", maxNameLen+1), wantSub: "shard id too long"},
		{name: "cancelled", ctx: cancelled, mapping: "m", shard: "s", wantIs: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := f.Save(tc.ctx, tc.mapping, tc.shard, event.Position{Seq: "1"})
			if err == nil {
				t.Fatal("Save succeeded")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("err = %v, want %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantSub) || !strings.Contains(err.Error(), f.Path()) {
				t.Errorf("err = %q, want it to name the file and say %q", err, tc.wantSub)
			}
		})
	}
	if p, err := f.Load(t.Context(), "m", "s"); err != nil || !p.IsZero() {
		t.Errorf("after failed saves Load = %+v, %v; want zero", p, err)
	}
}

func TestClose(t *testing.T) {
	f, _ := openTemp(t)
	ctx := t.Context()
	saveSeqs(t, f, 1, 1)
	if err := f.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := f.Save(ctx, "m", "s", event.Position{Seq: "2"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Save after Close = %v, want ErrClosed", err)
	}
	if _, err := f.Load(ctx, "m", "s"); !errors.Is(err, ErrClosed) {
		t.Errorf("Load after Close = %v, want ErrClosed", err)
	}
}

// Saves racing with Close either succeed (and are stored) or fail: none
// blocks and none reports a position it did not store.
func TestCloseDuringSaves(t *testing.T) {
	f, path := openTemp(t)
	ctx := t.Context()
	var (
		wg sync.WaitGroup
		ok [20]atomic.Int64
	)
	for w := range len(ok) {
		wg.Go(func() {
			for i := int64(1); ; i++ {
				if err := f.Save(ctx, "m", fmt.Sprint(w), event.Position{Seq: fmt.Sprint(i)}); err != nil {
					if !errors.Is(err, ErrClosed) {
						t.Errorf("Save: %v", err)
					}
					return
				}
				ok[w].Store(i)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	f2 := mustOpen(t, path)
	for w := range len(ok) {
		p, err := f2.Load(ctx, "m", fmt.Sprint(w))
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		if p.Seq != "" {
			fmt.Sscan(p.Seq, &got)
		}
		if got < ok[w].Load() {
			t.Errorf("shard %d: stored %d, but %d was reported saved", w, got, ok[w].Load())
		}
	}
}

func TestOpenFileLocked(t *testing.T) {
	tests := []struct {
		name string
		opts []Option
		max  time.Duration
	}{
		{name: "short timeout", opts: []Option{WithLockTimeout(200 * time.Millisecond)}, max: 2 * time.Second},
		{name: "default timeout", max: DefaultLockTimeout + 2*time.Second},
	}
	f, path := openTemp(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// flock locks belong to an open file description, so a second
			// open in this process is refused like another process's.
			start := time.Now()
			g, err := OpenFile(path, tc.opts...)
			if err == nil {
				g.Close()
				t.Fatal("second OpenFile succeeded")
			}
			if el := time.Since(start); el > tc.max {
				t.Errorf("gave up after %s, want under %s", el, tc.max)
			}
			if !errors.Is(err, ErrLocked) {
				t.Errorf("err = %v, want ErrLocked", err)
			}
			for _, s := range []string{path, "another esmd"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err = %q, want it to contain %q", err, s)
				}
			}
		})
	}
	if err := f.Save(t.Context(), "m", "s", event.Position{Seq: "1"}); err != nil {
		t.Errorf("first store unusable after refused open: %v", err)
	}
}

func TestOpenFileCorrupt(t *testing.T) {
	// valid returns the bytes of a good checkpoint file.
	valid := func(t *testing.T) []byte {
		t.Helper()
		f, path := openTemp(t)
		for i := range 50 {
			if err := f.Save(t.Context(), "m", fmt.Sprintf("shard-%d", i), event.Position{Seq: "12345"}); err != nil {
				t.Fatal(err)
			}
		}
		f.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// boltFile returns a bbolt file written by fill.
	boltFile := func(t *testing.T, fill func(tx *bolt.Tx) error) []byte {
		t.Helper()
		path := filepath.Join(t.TempDir(), "raw.db")
		writeBolt(t, path, fill)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// frames returns the offsets of the frames of a file in this format.
	frames := func(t *testing.T, b []byte) []int {
		t.Helper()
		var offs []int
		for off := headerLen; ; {
			_, next, ok := frameAt(b, off)
			if !ok {
				return offs
			}
			offs = append(offs, off)
			off = next
		}
	}
	tests := []struct {
		name    string
		content func(t *testing.T) []byte
		wantSub string
	}{
		{name: "text file", wantSub: "no esmd checkpoint header", content: func(*testing.T) []byte { return []byte("not a database\n") }},
		// esmd never leaves a file empty (see create): an empty one was
		// emptied, and taken for new it would start every shard over.
		{name: "empty", wantSub: "the file is empty", content: func(*testing.T) []byte { return nil }},
		{name: "random bytes", content: func(*testing.T) []byte {
			b := make([]byte, 64*1024)
			for i := range b {
				b[i] = byte(i*7919 + i>>8)
			}
			return b
		}},
		{name: "all zeros", wantSub: "no esmd checkpoint header", content: func(*testing.T) []byte { return make([]byte, 3000) }},
		{name: "truncated inside a frame", wantSub: "truncated", content: func(t *testing.T) []byte {
			b := valid(t)
			offs := frames(t, b)
			return b[:offs[len(offs)-1]+frameHeadLen+3]
		}},
		{name: "truncated inside a frame head", wantSub: "truncated", content: func(t *testing.T) []byte {
			b := valid(t)
			offs := frames(t, b)
			return b[:offs[len(offs)-1]+5]
		}},
		{name: "header zeroed", wantSub: "no esmd checkpoint header", content: func(t *testing.T) []byte {
			b := valid(t)
			clear(b[:headerLen])
			return b
		}},
		{name: "header damaged", wantSub: "damaged header", content: func(t *testing.T) []byte {
			b := valid(t)
			b[len(headerMagic)+1] ^= 0x20
			return b
		}},
		{name: "newer format", wantSub: "format version 2 is unknown", content: func(t *testing.T) []byte {
			b := valid(t)
			binary.LittleEndian.PutUint32(b[len(headerMagic):], 2)
			binary.LittleEndian.PutUint32(b[headerLen-4:], crc32.Checksum(b[:headerLen-4], castagnoli))
			return b
		}},
		{name: "frame damaged before whole ones", wantSub: "followed by a whole frame", content: func(t *testing.T) []byte {
			b := valid(t)
			offs := frames(t, b)
			b[offs[10]+frameHeadLen+3] ^= 1
			return b
		}},
		{name: "frame head damaged before whole ones", wantSub: "followed by a whole frame", content: func(t *testing.T) []byte {
			b := valid(t)
			offs := frames(t, b)
			clear(b[offs[20] : offs[20]+frameHeadLen])
			return b
		}},
		{name: "bytes after the length of a damaged last frame", wantSub: "damaged frame", content: func(t *testing.T) []byte {
			b := valid(t)
			offs := frames(t, b)
			last := offs[len(offs)-1]
			b[last+frameHeadLen] ^= 1
			b[last+500] = 1
			return b
		}},
		{name: "unknown value version", wantSub: "unknown encoding version 9", content: func(t *testing.T) []byte {
			b := valid(t)
			offs := frames(t, b)
			end := offs[len(offs)-1]
			_, end, _ = frameAt(b, end)
			fr := startFrame(nil)
			fr = appendEntry(fr, "m", "s", []byte{9, 0, '1'})
			fr = finishFrame(fr, 0)
			copy(b[end:], fr)
			return b
		}},
		{name: "malformed entry", wantSub: "malformed entry", content: func(t *testing.T) []byte {
			b := valid(t)
			offs := frames(t, b)
			_, end, _ := frameAt(b, offs[len(offs)-1])
			fr := startFrame(nil)
			fr = append(fr, 0x05, 'm')
			fr = finishFrame(fr, 0)
			copy(b[end:], fr)
			return b
		}},
		{name: "older (bbolt) file, meta pages zeroed", content: func(t *testing.T) []byte {
			b := boltFile(t, func(tx *bolt.Tx) error {
				_, err := tx.CreateBucket([]byte("m"))
				return err
			})
			clear(b[:2*os.Getpagesize()])
			return b
		}},
		{name: "older (bbolt) file, data pages overwritten", wantSub: "bbolt", content: func(t *testing.T) []byte {
			b := boltFile(t, func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucket([]byte("m"))
				if err != nil {
					return err
				}
				for i := range 200 {
					if err := bk.Put(fmt.Appendf(nil, "shard-%d", i), []byte{1, 0, '7'}); err != nil {
						return err
					}
				}
				return nil
			})
			for i := 2 * os.Getpagesize(); i < len(b); i++ {
				b[i] = 0xff
			}
			return b
		}},
		{name: "older (bbolt) file, unknown value version", wantSub: "unknown encoding version 9", content: func(t *testing.T) []byte {
			return boltFile(t, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("m"))
				if err != nil {
					return err
				}
				return b.Put([]byte("s"), []byte{9, 0, '1'})
			})
		}},
		{name: "older (bbolt) file, nested bucket", wantSub: "nested bucket", content: func(t *testing.T) []byte {
			return boltFile(t, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("m"))
				if err != nil {
					return err
				}
				_, err = b.CreateBucket([]byte("x"))
				return err
			})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			content := tc.content(t)
			path := filepath.Join(t.TempDir(), "cp.db")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			f, err := OpenFile(path)
			if err == nil {
				f.Close()
				t.Fatal("OpenFile succeeded on a damaged file")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("err = %q, want it to name %s", err, path)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("err = %v, want ErrCorrupt", err)
			}
			if tc.wantSub != "" && !strings.Contains(err.Error(), tc.wantSub) {
				t.Errorf("err = %q, want it to say %q", err, tc.wantSub)
			}
			after, rerr := os.ReadFile(path)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if string(after) != string(content) {
				t.Error("OpenFile changed the damaged file")
			}
		})
	}
}

func TestOpenFileUnusablePath(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{name: "parent is a regular file", path: filepath.Join(regular, "cp.db")},
		{name: "grandparent is a regular file", path: filepath.Join(regular, "sub", "cp.db")},
		{name: "path is a folder", path: dir},
		{name: "empty path", path: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := OpenFile(tc.path)
			if err == nil {
				f.Close()
				t.Fatal("OpenFile succeeded")
			}
			if !strings.Contains(err.Error(), tc.path) {
				t.Errorf("err = %q, want it to name %q", err, tc.path)
			}
		})
	}
}

func TestOpenFileReadOnlyFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: folder permissions do not apply (TestOpenFileUnusablePath covers an unwritable path)")
	}
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	path := filepath.Join(dir, "cp.db")
	f, err := OpenFile(path)
	if err == nil {
		f.Close()
		t.Fatal("OpenFile succeeded in a read-only folder")
	}
	if !errors.Is(err, os.ErrPermission) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want a permission error naming %s", err, path)
	}
}

// withCompactAt lowers the log size at which the store rewrites its file.
func withCompactAt(n int64) Option { return func(o *options) { o.compactAt = n } }

// TestOpenFileTornTail cuts the last frame of a file the way a crash during
// its write can, and checks that the file opens with every earlier
// position, without the cut one, and that saving goes on after it.
func TestOpenFileTornTail(t *testing.T) {
	// build writes m/a..m/e, then m/last "1", then m/last "2" in its own
	// frame, and returns the file's bytes and where that frame starts.
	build := func(t *testing.T) ([]byte, int) {
		t.Helper()
		f, path := openTemp(t)
		ctx := t.Context()
		for _, s := range []string{"a", "b", "c", "d", "e"} {
			if err := f.Save(ctx, "m", s, event.Position{Seq: "100" + s}); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.Save(ctx, "m", "last", event.Position{Seq: "1"}); err != nil {
			t.Fatal(err)
		}
		before := f.end
		// Longer than the save after the tear, so that bytes of it would
		// be left behind if the tear were not dropped.
		if err := f.Save(ctx, "m", "last", event.Position{Seq: "2" + strings.Repeat("0", 300), Finished: true}); err != nil {
			t.Fatal(err)
		}
		f.Close()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b, int(headAligned(before))
	}
	tests := []struct {
		name string
		cut  func(b []byte, last int)
	}{
		{name: "only part of the head written", cut: func(b []byte, last int) { clear(b[last+6:]) }},
		{name: "head written, payload cut", cut: func(b []byte, last int) { clear(b[last+frameHeadLen+5:]) }},
		{name: "head lost, payload written", cut: func(b []byte, last int) { clear(b[last : last+frameHeadLen]) }},
		{name: "a byte of the payload lost", cut: func(b []byte, last int) { b[last+frameHeadLen+2] = 0 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, last := build(t)
			tc.cut(b, last)
			path := filepath.Join(t.TempDir(), "cp.db")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			f, err := OpenFile(path)
			if err != nil {
				t.Fatalf("OpenFile: %v", err)
			}
			want := map[string]event.Position{"a": {Seq: "100a"}, "b": {Seq: "100b"}, "c": {Seq: "100c"},
				"d": {Seq: "100d"}, "e": {Seq: "100e"}, "last": {Seq: "1"}}
			all, err := f.All(ctx, "m")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, all); diff != "" {
				t.Errorf("after the torn write (-want +got):\n%s", diff)
			}
			// Saving goes on where the whole frames end, and the file
			// opens clean with it.
			if err := f.Save(ctx, "m", "last", event.Position{Seq: "3"}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := scan(after, func(string, string, []byte) error { return nil })
			if err != nil || sc.torn {
				t.Errorf("file after the next save: torn %t, %v; want clean", sc.torn, err)
			}
			f, err = OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want["last"] = event.Position{Seq: "3"}
			all, _ = f.All(ctx, "m")
			if diff := cmp.Diff(want, all); diff != "" {
				t.Errorf("after reopening (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOpenFileConvertsBolt opens a file written by an older esmd (bbolt)
// and checks that every position is kept and the file is rewritten in the
// current format.
func TestOpenFileConvertsBolt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	want := map[string]map[string]event.Position{
		"orders":   {"shardId-000000000000": {Seq: "4959033827149025660855969"}, "shardId-000000000001": {Seq: "77", Finished: true}},
		"payments": {"shardId-000000000003": {Finished: true}},
	}
	writeBolt(t, path, boltPositions(want))

	ctx := t.Context()
	check := func(f *File) {
		t.Helper()
		got := map[string]map[string]event.Position{}
		names, err := f.Mappings(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range names {
			if got[m], err = f.All(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("positions (-want +got):\n%s", diff)
		}
	}
	f, err := OpenFile(path)
	if err != nil {
		t.Fatalf("OpenFile of a bbolt file: %v", err)
	}
	check(f)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkHeader(b); err != nil {
		t.Errorf("file not rewritten in the current format: %v", err)
	}
	if err := f.Save(ctx, "orders", "shardId-000000000000", event.Position{Seq: "4959033827149025660855970"}); err != nil {
		t.Fatal(err)
	}
	want["orders"]["shardId-000000000000"] = event.Position{Seq: "4959033827149025660855970"}
	f.Close()
	if f, err = OpenFile(path); err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	check(f)
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o600 {
		t.Errorf("converted file mode = %v, %v; want 0600", fi.Mode(), err)
	}
}

// TestCompaction saves until the log has been rewritten many times, while
// another OpenFile of the same path waits for the lock, and checks that the
// file stays small, that the waiter never gets the lock of a file a rewrite
// replaced, and that the last positions are what the file holds.
func TestCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	f, err := OpenFile(path, withCompactAt(2<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx := t.Context()
	waiter := make(chan error, 1)
	go func() {
		g, err := OpenFile(path, WithLockTimeout(time.Second))
		if err == nil {
			g.Close()
		}
		waiter <- err
	}()
	const shards, rounds = 8, 200
	var wg sync.WaitGroup
	for s := range shards {
		wg.Go(func() {
			for i := 1; i <= rounds; i++ {
				if err := f.Save(ctx, "m", fmt.Sprint(s), event.Position{Seq: fmt.Sprint(i)}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := <-waiter; !errors.Is(err, ErrLocked) {
		t.Errorf("a second OpenFile while the store rewrote its file: %v, want ErrLocked", err)
	}
	if f.rewrites < 5 {
		t.Errorf("the log was rewritten %d times; want several", f.rewrites)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 3*chunk {
		t.Errorf("file is %d bytes after %d saves; want it compacted", fi.Size(), shards*rounds)
	}
	if fi.Mode() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode())
	}
	if stale, _ := filepath.Glob(path + staleSuffix + "*"); len(stale) > 0 {
		t.Errorf("rewrite left files behind: %v", stale)
	}
	f.Close()
	g := mustOpen(t, path)
	all, err := g.All(ctx, "m")
	if err != nil {
		t.Fatal(err)
	}
	for s := range shards {
		if p := all[fmt.Sprint(s)]; p.Seq != fmt.Sprint(rounds) {
			t.Errorf("shard %d: %+v, want seq %d", s, p, rounds)
		}
	}
}

// After a failed write the next commit rewrites the file from the synced
// positions instead of appending to a file in an unknown state.
func TestSaveAfterFailedWrite(t *testing.T) {
	f, path := openTemp(t)
	ctx := t.Context()
	saveSeqs(t, f, 1, 1)
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// What a failed append leaves: a broken store and garbage at the end.
	if _, err := f.file.WriteAt([]byte("cpf1garbage"), f.end); err != nil {
		t.Fatal(err)
	}
	f.broken = errors.New("write failed")
	if err := f.Save(ctx, "m", "t", event.Position{Seq: "2"}); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(before, after) {
		t.Error("the file was appended to, not rewritten")
	}
	f.Close()
	g := mustOpen(t, path)
	all, _ := g.All(ctx, "m")
	if diff := cmp.Diff(map[string]event.Position{"s": {Seq: "1"}, "t": {Seq: "2"}}, all); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestSamePath(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	other := filepath.Join(dir, "other")
	tests := []struct {
		name   string
		change func() error
		want   bool
	}{
		{name: "unchanged", change: func() error { return nil }, want: true},
		{name: "replaced by a rename", change: func() error {
			if err := os.WriteFile(other, nil, 0o600); err != nil {
				return err
			}
			return os.Rename(other, path)
		}, want: false},
		{name: "removed", change: func() error { return os.Remove(path) }, want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.change(); err != nil {
				t.Fatal(err)
			}
			if got, err := samePath(f, path); err != nil || got != tc.want {
				t.Errorf("samePath = %t, %v; want %t", got, err, tc.want)
			}
		})
	}
}

// TestOpenLockedReplacedWhileOpening replaces the file between openLocked's
// open and its lock, as another process's compaction can: the lock taken
// must be the new file's, not the replaced one's.
func TestOpenLockedReplacedWhileOpening(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cp.db")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	replaced := false
	lockHook = func() {
		if replaced {
			return
		}
		replaced = true
		if err := os.WriteFile(filepath.Join(dir, "new"), []byte("new"), 0o600); err != nil {
			t.Error(err)
		}
		if err := os.Rename(filepath.Join(dir, "new"), path); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { lockHook = nil })
	f, created, err := openLocked(path, time.Second)
	if err != nil || created {
		t.Fatalf("openLocked: created %t, %v", created, err)
	}
	defer f.Close()
	if same, err := samePath(f, path); err != nil || !same {
		t.Fatalf("openLocked holds a file no longer at the path (same %t, %v)", same, err)
	}
	b := make([]byte, 3)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "new" {
		t.Fatalf("read %q, %v; want the new file", b, err)
	}
}

// A failed write of the zeros that grow the file leaves the log as it was:
// the next save appends again instead of rewriting the file.
func TestGrowFailureKeepsAppending(t *testing.T) {
	f, path := openTemp(t)
	ctx := t.Context()
	saveSeqs(t, f, 1, 1)
	before, _ := os.Stat(path)
	rw := f.file
	ro, err := os.Open(path) // writes to it fail
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	f.file, f.alloc = ro, f.end // the next save must grow the file
	if err := f.Save(ctx, "m", "s", event.Position{Seq: "2"}); err == nil || !strings.Contains(err.Error(), "grow") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Save with a failing grow = %v, want a grow error naming %s", err, path)
	}
	if f.broken != nil {
		t.Fatalf("a failed grow marked the store broken: %v", f.broken)
	}
	f.file = rw
	if err := f.Save(ctx, "m", "s", event.Position{Seq: "3"}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(path)
	if !os.SameFile(before, after) || f.rewrites != 1 {
		t.Errorf("the file was rewritten (%d rewrites), want the save appended", f.rewrites)
	}
	f.Close()
	wantReopened(t, path, "3")
}

// failCreate makes createTemp fail until the test ends.
func failCreate(t *testing.T) {
	createTemp = func(string, string) (*os.File, error) {
		return nil, &os.PathError{Op: "open", Path: "new file", Err: syscall.ENOSPC}
	}
	t.Cleanup(func() { createTemp = os.CreateTemp })
}

// A compaction that cannot write its new file (a full disk) leaves the log
// as it was: saves go on appending, and compaction is tried again later.
func TestCompactionFailureKeepsAppending(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	f := mustOpen(t, path, withCompactAt(2<<10))
	failCreate(t)
	saveSeqs(t, f, 1, 100) // while compaction fails
	if f.rewrites != 1 || f.broken != nil {
		t.Fatalf("rewrites %d, broken %v; want only the open's rewrite and a working store", f.rewrites, f.broken)
	}
	// What was appended meanwhile is a clean log of every save.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	n := 0
	sc, err := scan(b, func(_, _ string, val []byte) error {
		p, err := decode(val)
		last, n = p.Seq, n+1
		return err
	})
	if err != nil || sc.torn || n != 100 || last != "100" {
		t.Fatalf("log after failed compactions: %d entries, last %q, torn %t, %v; want 100 ending at 100, clean", n, last, sc.torn, err)
	}
	createTemp = os.CreateTemp
	saveSeqs(t, f, 101, 200)
	if f.rewrites < 2 {
		t.Errorf("compaction not tried again once it could work (%d rewrites)", f.rewrites)
	}
	f.Close()
	wantReopened(t, path, "200")
}

// OpenFile fails at once, saying what to do, when it cannot put a new file
// in the checkpoint file's folder (a file mounted alone into a container,
// an unwritable folder): it would fail at the first compaction otherwise.
func TestOpenFileCannotReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	failCreate(t)
	f, err := OpenFile(path)
	if err == nil {
		f.Close()
		t.Fatal("OpenFile succeeded")
	}
	for _, want := range []string{path, "no space left", "mount the folder"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %q, want it to say %q", err, want)
		}
	}
	if errors.Is(err, ErrCorrupt) {
		t.Errorf("err = %v: not a corrupt file", err)
	}
}

// A checkpoint path that is a symbolic link: the store writes the file it
// points to and keeps the link, and that file is locked.
func TestOpenFileThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "data", "cp.db")
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "cp.db")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	f := mustOpen(t, link, withCompactAt(1<<10))
	saveSeqs(t, f, 1, 100)
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v, %v", fi.Mode(), err)
	}
	if f.rewrites < 2 {
		t.Fatalf("%d rewrites; want compactions through the link", f.rewrites)
	}
	wantLocked(t, target, "of the link's target")
}

// No frame head crosses a sector boundary, whatever the sizes of the saves.
func TestFrameHeadsWithinSectors(t *testing.T) {
	f, path := openTemp(t)
	for i := range 300 {
		if err := f.Save(t.Context(), "m", strings.Repeat("s", 1+i%37), event.Position{Seq: strings.Repeat("7", 1+i%53)}); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	frames := 0
	sc, err := scan(b, func(string, string, []byte) error { frames++; return nil })
	if err != nil || sc.torn || frames != 300 {
		t.Fatalf("scan: %d entries, torn %t, %v; want 300, clean", frames, sc.torn, err)
	}
	moved := 0
	for off := headerLen; off < sc.end; {
		if _, next, ok := frameAt(b, off); ok {
			if off/sector != (off+frameHeadLen-1)/sector {
				t.Fatalf("frame head at byte %d crosses a sector boundary", off)
			}
			off = next
			continue
		}
		moved++
		off = int(headAligned(int64(off)))
	}
	if moved == 0 {
		t.Error("no frame was moved to a sector boundary; the sizes do not test it")
	}
}

// Failing to convert an older (bbolt) file for want of room is not damage:
// the error does not say corrupt, and the file is left as it was.
func TestConvertBoltWithoutRoom(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	writeBolt(t, path, boltPositions(map[string]map[string]event.Position{"m": {"s": {Seq: "5"}}}))
	before, _ := os.ReadFile(path)
	failCreate(t)
	f, err := OpenFile(path)
	if err == nil {
		f.Close()
		t.Fatal("OpenFile succeeded")
	}
	if errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "no space left") {
		t.Errorf("err = %v, want the copy's failure, not ErrCorrupt", err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(before) {
		t.Error("the older file was changed")
	}
}

// A compaction whose rename succeeded but whose folder sync failed keeps
// the new file open and locked as the log; the next save rewrites it again.
func TestCompactionFolderSyncFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	f := mustOpen(t, path, withCompactAt(1<<10))
	ctx := t.Context()
	syncFolder = func(string) error { return syscall.EIO }
	t.Cleanup(func() { syncFolder = syncDir })
	var failed error
	for i := 1; i <= 100 && failed == nil; i++ {
		failed = f.Save(ctx, "m", "s", event.Position{Seq: fmt.Sprint(i)})
	}
	if failed == nil || !strings.Contains(failed.Error(), "sync the folder") {
		t.Fatalf("no save reported the failed folder sync: %v", failed)
	}
	wantLocked(t, path, "after the failed folder sync")
	syncFolder = syncDir
	if err := f.Save(ctx, "m", "s", event.Position{Seq: "1000"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	wantReopened(t, path, "1000")
}

// More than twice maxGroup Saves queued while a commit is under way are all
// answered (the queue's shift once ran out of bounds).
func TestSaveQueueOverTwoGroups(t *testing.T) {
	f, _ := openTemp(t)
	ctx := context.Background()
	f.mu.Lock() // the leader blocks in commit's put
	errs := make(chan error, 3*maxGroup)
	go func() { errs <- f.Save(ctx, "m", "lead", event.Position{Seq: "1"}) }()
	waitUntil(t, func() bool {
		f.qmu.Lock()
		defer f.qmu.Unlock()
		return f.leading && len(f.queue) == 0
	})
	n := 2*maxGroup + 10
	for i := range n {
		go func() { errs <- f.Save(ctx, "m", fmt.Sprint("s", i), event.Position{Seq: "1"}) }()
	}
	waitUntil(t, func() bool {
		f.qmu.Lock()
		defer f.qmu.Unlock()
		return len(f.queue) == n
	})
	f.mu.Unlock()
	for range n + 1 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A log whose bytes hold the bbolt magic where a bbolt meta page has it
// is still read as a log: the header decides.
func TestOpenFileLogHoldingBoltMagic(t *testing.T) {
	f, path := openTemp(t)
	shard := make([]byte, 5000)
	for i := range shard {
		shard[i] = 'x'
	}
	for _, at := range []int{4060, 4072} {
		copy(shard[at:], []byte{0xED, 0xDA, 0x0C, 0xED})
	}
	if err := f.Save(context.Background(), "m", string(shard), event.Position{Seq: "1"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	g, err := OpenFile(path)
	if err != nil {
		t.Fatalf("reopen after an acknowledged Save: %v", err)
	}
	g.Close()
}

// A relative link is resolved from its folder as the kernel does, through
// that folder's own links, not by joining the text.
func TestOpenFileRelativeLinkThroughLinkedFolder(t *testing.T) {
	d := t.TempDir()
	real := filepath.Join(d, "other", "shared", "cp")
	f, err := OpenFile(real)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Save(context.Background(), "m", "s", event.Position{Seq: "42"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	os.MkdirAll(filepath.Join(d, "other", "x"), 0o700)
	os.MkdirAll(filepath.Join(d, "shared"), 0o700) // an unrelated folder
	if err := os.Symlink("../shared/cp", filepath.Join(d, "other", "x", "cp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(d, "other", "x"), filepath.Join(d, "link")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d, "link", "cp")
	if b, err := os.ReadFile(path); err != nil || len(b) == 0 {
		t.Fatalf("kernel resolves %s to the file: %v", path, err)
	}
	g := mustOpen(t, path)
	p, _ := g.Load(context.Background(), "m", "s")
	if p.Seq != "42" {
		t.Fatalf("opened %s (real %s): position %q, want 42", path, g.real, p.Seq)
	}
}

// After a failed compaction and a successful one, compaction comes back
// to its usual size.
func TestCompactionRetryIsReset(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cp.db")
	f := mustOpen(t, path, withCompactAt(2<<10))
	peak := func(from, to int) int64 {
		var m int64
		for i := from; i < to; i++ {
			m = max(m, f.logged)
			saveSeqs(t, f, i, i)
		}
		return m
	}
	before := peak(0, 500)
	failCreate(t)
	peak(500, 600)
	createTemp = os.CreateTemp
	peak(600, 800)
	after := peak(800, 1300)
	if after > before+100 {
		t.Errorf("log now grows to %d before compaction, was %d", after, before)
	}
}

// A damaged length with the top bit set is no frame (and no panic where
// int is 32 bits).
func TestFrameLengthTopBit(t *testing.T) {
	b := appendHeader(nil)
	b = append(b, "cpf1\x00\x00\x00\x80\x00\x00\x00\x00"...)
	b = append(b, make([]byte, 100)...)
	if _, _, ok := frameAt(b, headerLen); ok {
		t.Fatal("frameAt accepted a frame longer than the file")
	}
	if _, err := scan(b, func(string, string, []byte) error { return nil }); err == nil {
		t.Fatal("scan accepted a file ending inside a frame")
	}
}

// Stale files are removed from the checkpoint file's own folder only, even
// when its path holds pattern characters.
func TestRemoveStaleOnlyInItsFolder(t *testing.T) {
	d := t.TempDir()
	other := filepath.Join(d, "dz")
	os.MkdirAll(other, 0o700)
	victim := filepath.Join(other, "cp"+staleSuffix+"123") // another store's new file
	os.WriteFile(victim, []byte("x"), 0o600)
	f, err := OpenFile(filepath.Join(d, "d*", "cp"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("opening %s removed %s: %v", filepath.Join(d, "d*", "cp"), victim, err)
	}
}

// writeBolt writes a bbolt file at path, as an older esmd did, filled by fill.
func writeBolt(t *testing.T, path string, fill func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(fill); err != nil {
		t.Fatal(err)
	}
}

// boltPositions fills a bbolt file with positions, a bucket per mapping.
func boltPositions(state map[string]map[string]event.Position) func(tx *bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		for m, shards := range state {
			b, err := tx.CreateBucket([]byte(m))
			if err != nil {
				return err
			}
			for s, p := range shards {
				if err := b.Put([]byte(s), encode(p)); err != nil {
					return err
				}
			}
		}
		return nil
	}
}

// waitUntil polls cond every millisecond, for up to 10 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		<-tick.C
	}
}

// A rewrite replaces the file with a new one: at every open, and when the
// log is compacted. The new file keeps the old one's permissions and, where
// the process may give it away (as root), its owner and group.
func TestRewriteKeepsAccess(t *testing.T) {
	root := os.Geteuid() == 0
	for _, c := range []struct {
		name     string
		mode     os.FileMode
		uid, gid int // -1: the process's own
	}{
		{"readable by its group", 0o640, -1, -1},
		{"readable by all", 0o644, -1, -1},
		{"private", 0o600, -1, -1},
		{"owned by another user", 0o660, 65534, 65534},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.uid >= 0 && !root {
				// CI runs as root: there the case must run, not skip.
				if os.Getenv("CI") == "true" {
					t.Fatal("only root may give a file to another user, and CI runs as root")
				}
				t.Skip("only root may give a file to another user")
			}
			path := filepath.Join(t.TempDir(), "cp.db")
			f, err := OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			saveSeqs(t, f, 1, 1)
			f.Close()
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			uid, gid := os.Geteuid(), os.Getegid()
			if c.uid >= 0 {
				uid, gid = c.uid, c.gid
				if err := os.Chown(path, uid, gid); err != nil {
					t.Fatal(err)
				}
			}
			want := func(when string) {
				t.Helper()
				fi, err := os.Stat(path)
				if err != nil {
					t.Fatal(err)
				}
				st := fi.Sys().(*syscall.Stat_t)
				if fi.Mode() != c.mode || int(st.Uid) != uid || int(st.Gid) != gid {
					t.Errorf("%s: mode %v, owner %d:%d; want %v, %d:%d", when, fi.Mode(), st.Uid, st.Gid, c.mode, uid, gid)
				}
			}
			g := mustOpen(t, path, withCompactAt(2<<10))
			want("after the open's rewrite")
			before := g.rewrites
			saveSeqs(t, g, 2, 300)
			if g.rewrites == before {
				t.Fatal("the log was never compacted")
			}
			want("after compaction")
		})
	}
}
