// Command sink is the benchmarks' no-op HTTP function: it answers every POST
// with 200 and {} after reading the body, and counts the records of the
// events it received (GET /count). It runs as a process of its own so that
// the process measured (esmd, or a benchmark's engine) pays none of its CPU
// or memory.
//
//	sink [-addr 127.0.0.1:0]   prints "listening on ADDRESS" on stdout
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen `ADDRESS`")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
	var records, requests atomic.Int64
	bufs := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	marker := []byte(`"eventID":`)
	ok := []byte("{}")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			fmt.Fprintf(w, "%d %d\n", records.Load(), requests.Load())
			return
		}
		b := bufs.Get().(*bytes.Buffer)
		b.Reset()
		if _, err := io.Copy(b, r.Body); err != nil {
			bufs.Put(b)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		records.Add(int64(bytes.Count(b.Bytes(), marker)))
		requests.Add(1)
		bufs.Put(b)
		w.Header().Set("Content-Length", strconv.Itoa(len(ok)))
		_, _ = w.Write(ok)
	})
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := http.Serve(ln, h); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(1)
	}
}
