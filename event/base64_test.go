package event

import (
	"encoding/base64"
	"math/rand/v2"
	"testing"
)

func TestAppendBase64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 200; n++ {
		src := make([]byte, n)
		for i := range src {
			src[i] = byte(rng.UintN(256))
		}
		for _, prefix := range []string{"", "x", `"data":"`} {
			want := base64.StdEncoding.AppendEncode([]byte(prefix), src)
			if got := AppendBase64([]byte(prefix), src); string(got) != string(want) {
				t.Fatalf("%d bytes after %q: got %s, want %s", n, prefix, got, want)
			}
		}
	}
	// Every 12-bit value in every position of a group.
	for v := 0; v < 1<<12; v++ {
		src := []byte{byte(v >> 4), byte(v<<4) | byte(v>>8), byte(v), byte(v >> 4), byte(v<<4) | byte(v>>8), byte(v), 0xff, 0}
		if got, want := string(AppendBase64(nil, src)), base64.StdEncoding.EncodeToString(src); got != want {
			t.Fatalf("% x: got %s, want %s", src, got, want)
		}
	}
}

func FuzzAppendBase64(f *testing.F) {
	f.Add([]byte("Hello, this is a test."), []byte(`{"k":`))
	f.Add([]byte{0xff, 0xfe, 0, 1, 2, 3, 4, 5, 6}, []byte(nil))
	f.Fuzz(func(t *testing.T, src, prefix []byte) {
		want := base64.StdEncoding.AppendEncode(append([]byte(nil), prefix...), src)
		if got := AppendBase64(append([]byte(nil), prefix...), src); string(got) != string(want) {
			t.Fatalf("got %s, want %s", got, want)
		}
	})
}

func BenchmarkAppendBase64(b *testing.B) {
	src := make([]byte, 100)
	for i := range src {
		src[i] = byte(i * 7)
	}
	dst := make([]byte, 0, 256)
	b.Run("event", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			dst = AppendBase64(dst[:0], src)
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			dst = base64.StdEncoding.AppendEncode(dst[:0], src)
		}
	})
}
