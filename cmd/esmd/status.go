package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/esmd-dev/esmd/admin"
	"github.com/esmd-dev/esmd/config"
)

// statusTimeout bounds the whole `esmd status` request.
var statusTimeout = 5 * time.Second

// cmdStatus implements `esmd status [-c FILE] [--addr HOST:PORT]`: it reads
// /mappings of a running esmd and prints one line per mapping. The address
// and token come from the file's server section; --addr overrides the
// address.
func cmdStatus(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("esmd status", flag.ContinueOnError)
	fset.SetOutput(stderr)
	path := "esmd.yaml"
	fset.StringVar(&path, "c", path, "configuration `FILE` of the running esmd (for server.listen and server.authToken)")
	fset.StringVar(&path, "config", path, "configuration `FILE` (same as -c)")
	addr := fset.String("addr", "", "`HOST:PORT` of the running esmd's server (default: server.listen of FILE)")
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fset.NArg() > 0 {
		fmt.Fprintf(stderr, "esmd status: unexpected argument %q\n", fset.Arg(0))
		return exitUsage
	}
	explicit := false
	fset.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "c" || f.Name == "config" })

	token := ""
	cfg, err := config.Load(path)
	switch {
	case err == nil:
		token = cfg.Server.AuthToken.Value()
		if *addr == "" {
			*addr = cfg.Server.Address()
			if *addr == "" {
				fmt.Fprintf(stderr, "esmd status: %s disables the server (server.listen: off); pass --addr HOST:PORT\n", path)
				return exitFailure
			}
		}
	case *addr != "" && !explicit && errors.Is(err, fs.ErrNotExist):
		// --addr alone, and no default file: ask without a token.
	default:
		printProblems(stderr, path, err)
		return exitFailure
	}

	base := "http://" + dialAddr(*addr)
	ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
	defer cancel()
	views, err := admin.List(ctx, &http.Client{}, base, token)
	if err != nil {
		if errors.Is(err, admin.ErrUnreachable) {
			fmt.Fprintf(stderr, "esmd status: esmd is not reachable at %s: is it running, with server.listen %s?\n", base, *addr)
		} else {
			fmt.Fprintf(stderr, "esmd status: %s: %v\n", base, err)
		}
		return exitFailure
	}
	printStatus(stdout, views)
	return exitOK
}

// dialAddr turns a listen address into one to connect to: a wildcard or
// missing host becomes the loopback address.
func dialAddr(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// printStatus writes the mappings as a table.
func printStatus(w io.Writer, views []admin.View) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tUUID\tSOURCE\tSTATE\tLAST RESULT\tSHARDS\tITERATOR AGE")
	for _, v := range views {
		d := v.Esmd
		state := v.State
		if state == "Enabled" && !d.Healthy {
			state += " (source failing)"
		}
		shards, age := "-", "-"
		switch {
		case d.Pollers != nil:
			shards = fmt.Sprintf("%d pollers", *d.Pollers)
		case v.State != "Disabled":
			shards = fmt.Sprint(len(d.Shards))
			if d.ShardsFinished > 0 {
				shards += fmt.Sprintf(" (+%d done)", d.ShardsFinished)
			}
			if failing := countFailing(d.Shards); failing > 0 {
				shards += fmt.Sprintf(" (%d failing)", failing)
			}
		}
		if len(d.Shards) > 0 {
			var maxAge int64
			for _, s := range d.Shards {
				maxAge = max(maxAge, s.IteratorAgeMilliseconds)
			}
			age = (time.Duration(maxAge) * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(d.Name), cell(v.UUID), cell(d.SourceType), cell(state),
			cell(v.LastProcessingResult), shards, age)
	}
	_ = tw.Flush()
}

func countFailing(shards []admin.ShardView) int {
	n := 0
	for _, s := range shards {
		if s.ReadFailing {
			n++
		}
	}
	return n
}

// cell keeps a value on one line and out of the table's separators.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}
