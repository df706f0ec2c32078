package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/esmd-dev/esmd/config"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes; doc.go documents them for users.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitHardStop = 3
)

// daemonFunc runs the daemon; see runDaemon.
type daemonFunc func(ctx context.Context, cfg *config.Config, log *slog.Logger, drain <-chan struct{}) error

var (
	// daemon is what "esmd run" runs; tests replace it.
	daemon daemonFunc = runDaemon
	// notifySignals subscribes to SIGINT and SIGTERM; tests replace it with
	// a channel they feed. The returned func unsubscribes.
	notifySignals = func() (<-chan os.Signal, func()) {
		c := make(chan os.Signal, 2)
		signal.Notify(c, os.Interrupt, syscall.SIGTERM)
		return c, func() { signal.Stop(c) }
	}
	// hardStopGrace is how long esmd waits for the daemon to return after
	// a hard stop before it exits anyway.
	hardStopGrace = 10 * time.Second
)

const usage = `esmd polls Kinesis, DynamoDB Streams and SQS and invokes functions the way
Lambda's event source mappings do.

Usage:
  esmd run     [-c FILE] [--watch]
                           run the mappings of FILE (default esmd.yaml);
                           SIGHUP (and, with --watch, a change of FILE)
                           reloads it
  esmd check   [-c FILE]   validate FILE and print every problem, one per line
  esmd bench   [-c FILE | --url URL] [flags]
                           drive a function with generated records and report
                           throughput, latency, retries and duplicates
  esmd status  [-c FILE] [--addr HOST:PORT]
                           print the mappings of the esmd running with FILE
  esmd version             print the version
  esmd help                print this help

Exit codes:
  0  ok: valid configuration (check), or stopped after a completed drain (run)
  1  invalid or unreadable configuration, or a failure at run time
  2  usage error
  3  stopped hard: the drain exceeded shutdownTimeout, or a second signal came

The first SIGINT/SIGTERM starts a graceful drain bounded by shutdownTimeout;
a second one stops at once.
`

func main() {
	// Heap profiling samples allocations unless server.pprof asks for it:
	// its table of sampled call stacks costs a megabyte or more of memory
	// that esmd otherwise never uses. (GODEBUG=memprofilerate=N still
	// overrides this.)
	if !strings.Contains(os.Getenv("GODEBUG"), "memprofilerate=") {
		runtime.MemProfileRate = 0
	}
	// The heap may grow to 1.5 times what is live before a collection, not
	// Go's default of twice: a sidecar shares its container's memory, and
	// most of esmd's heap is reads held until their batches are done. On
	// the Kinesis benchmark this lowered peak RSS without a measurable cost
	// in CPU. GOGC still overrides it.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line args and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch cmd, rest := args[0], args[1:]; cmd {
	case "run":
		return cmdRun(rest, stderr)
	case "check":
		return cmdCheck(rest, stdout, stderr)
	case "bench":
		return cmdBench(rest, stdout, stderr)
	case "status":
		return cmdStatus(rest, stdout, stderr)
	case "version":
		if len(rest) > 0 {
			fmt.Fprintf(stderr, "esmd version: unexpected argument %q\n", rest[0])
			return exitUsage
		}
		fmt.Fprintln(stdout, versionString())
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(stderr, "esmd: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
}

func versionString() string {
	return fmt.Sprintf("esmd %s %s %s/%s", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// parseConfigFlag parses the -c flag of run and check. It returns the file
// and, when the command must stop here, the exit code.
func parseConfigFlag(name string, args []string, stderr io.Writer) (string, int, bool) {
	return parseFlags(name, args, stderr, nil)
}

// parseFlags is parseConfigFlag with, when watch is not nil, the --watch
// flag of run.
func parseFlags(name string, args []string, stderr io.Writer, watch *bool) (string, int, bool) {
	fs := flag.NewFlagSet("esmd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := "esmd.yaml"
	fs.StringVar(&path, "c", path, "configuration `FILE`")
	fs.StringVar(&path, "config", path, "configuration `FILE` (same as -c)")
	if watch != nil {
		fs.BoolVar(watch, "watch", false, "reload the configuration when FILE changes (SIGHUP always reloads)")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", exitOK, false
		}
		return "", exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "esmd %s: unexpected argument %q\n", name, fs.Arg(0))
		return "", exitUsage, false
	}
	return path, 0, true
}

// printProblems writes each configuration problem on its own line,
// prefixed by the file name.
func printProblems(w io.Writer, path string, err error) {
	var errs config.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintf(w, "%s: %s\n", path, e)
		}
		return
	}
	fmt.Fprintf(w, "esmd: %v\n", err)
}

func cmdCheck(args []string, stdout, stderr io.Writer) int {
	path, code, ok := parseConfigFlag("check", args, stderr)
	if !ok {
		return code
	}
	cfg, err := config.Load(path)
	if err != nil {
		printProblems(stdout, path, err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "ok: %d mappings\n", len(cfg.Mappings))
	return exitOK
}

func cmdRun(args []string, stderr io.Writer) int {
	path, code, ok := parseFlags("run", args, stderr, &watchConfig)
	if !ok {
		return code
	}
	configPath = path
	cfg, err := config.Load(path)
	if err != nil {
		printProblems(stderr, path, err)
		return exitFailure
	}
	log := newLogger(cfg.Logging, stderr)
	sdkLog = log
	log.Info("esmd starting", "version", version, "config", path, "mappings", len(cfg.Mappings))
	sigs, stop := notifySignals()
	defer stop()
	return serve(context.Background(), cfg, log, sigs, daemon)
}

// serve runs d until it returns and maps the outcome to an exit code. The
// first signal on sigs closes d's drain channel and starts the
// shutdownTimeout timer; a second signal or the timer cancels d's context
// (hard stop, exit 3 once d returns, or after hardStopGrace if it does not).
func serve(parent context.Context, cfg *config.Config, log *slog.Logger, sigs <-chan os.Signal, d daemonFunc) int {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	drain := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- d(ctx, cfg, log, drain) }()

	var (
		timeout, grace <-chan time.Time
		draining, hard bool
	)
	stopHard := func() {
		hard = true
		cancel()
		sigs, timeout = nil, nil
		grace = time.After(hardStopGrace)
	}
	for {
		select {
		case err := <-done:
			switch {
			case hard:
				log.Error("esmd stopped hard", "err", err)
				return exitHardStop
			case err != nil:
				log.Error("esmd failed", "err", err)
				return exitFailure
			}
			log.Info("esmd stopped")
			return exitOK
		case sig := <-sigs:
			if !draining {
				draining = true
				close(drain)
				t := time.NewTimer(cfg.ShutdownTimeout.Std())
				defer t.Stop()
				timeout = t.C
				log.Info("draining", "signal", sig.String(), "shutdownTimeout", cfg.ShutdownTimeout.Std())
				continue
			}
			log.Warn("second signal: stopping now", "signal", sig.String())
			stopHard()
		case <-timeout:
			log.Error("drain did not finish within shutdownTimeout: stopping now", "shutdownTimeout", cfg.ShutdownTimeout.Std())
			stopHard()
		case <-grace:
			log.Error("esmd did not stop after the hard stop: exiting anyway", "waited", hardStopGrace)
			return exitHardStop
		}
	}
}
