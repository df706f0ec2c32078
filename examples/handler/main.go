// Command handler is the quickstart's example function, which esmd invokes
// with batches of generated records. It logs each batch, counts records and
// duplicates, and fails any batch that holds a poison record, so that esmd
// bisects it down to that record and, once its retries are spent, writes
// its failure record to the mapping's on-failure destination.
//
// Started by a function of kind runtime (AWS_LAMBDA_RUNTIME_API set), as
// examples/quickstart.yaml does, it is a Lambda function written with
// aws-lambda-go. Otherwise it is an HTTP server (a function of kind http):
//
//	go run ./examples/handler -addr 127.0.0.1:9800 [-expect 4000]
//
// GET /stats returns the counts as JSON. With -expect N it prints
// "handler: all N records seen (P poison)" once N distinct records arrived. It stops on
// SIGINT or SIGTERM and prints its counts.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"

	"github.com/esmd-dev/esmd/examples/handler/counter"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9800", "listen `ADDRESS`")
	expect := flag.Int64("expect", 0, "print a line once `N` distinct records were seen")
	failPoison := flag.Bool("fail-poison", true, "fail batches that hold a poison record")
	quiet := flag.Bool("quiet", false, "do not log each batch")
	flag.Parse()

	level := slog.LevelInfo
	if *quiet {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: level})).With("app", "handler")
	h := &counter.Handler{FailPoison: *failPoison, Logger: log}
	var once sync.Once
	if *expect > 0 {
		h.OnUnique = func(s counter.Stats) {
			if s.Unique >= *expect {
				once.Do(func() { fmt.Printf("handler: all %d records seen (%d poison)\n", s.Unique, s.Poison) })
			}
		}
	}
	if os.Getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		// Started by a function of kind runtime: serve the Runtime API,
		// as a Lambda function written with aws-lambda-go does. esmd
		// stops the process with SIGTERM.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-sig
			out, _ := json.Marshal(h.Stats())
			fmt.Printf("handler: stopped; counts %s\n", out)
			os.Exit(0)
		}()
		lambda.Start(func(_ context.Context, event json.RawMessage) (json.RawMessage, error) {
			if err := h.Process(event); err != nil {
				var fe *counter.Error
				if errors.As(err, &fe) {
					return nil, messages.InvokeResponse_Error{Type: fe.Type, Message: fe.Message}
				}
				return nil, err
			}
			return json.RawMessage(`{"batchItemFailures":[]}`), nil
		})
		return
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "handler:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	log.Info("listening", "addr", ln.Addr().String())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "handler:", err)
			os.Exit(1)
		}
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}
	out, _ := json.Marshal(h.Stats())
	fmt.Printf("handler: stopped; counts %s\n", out)
}
