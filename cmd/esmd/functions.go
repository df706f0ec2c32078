package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/nats-io/nats.go"

	"github.com/esmd-dev/esmd/config"
	"github.com/esmd-dev/esmd/invoke/execfunc"
	"github.com/esmd-dev/esmd/invoke/httpfunc"
	"github.com/esmd-dev/esmd/invoke/lambdafunc"
	"github.com/esmd-dev/esmd/invoke/natsfunc"
	"github.com/esmd-dev/esmd/invoke/runtimeapi"
	"github.com/esmd-dev/esmd/mapping"
)

// closerFunc adapts a function to io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }

var noClose = closerFunc(func() error { return nil })

// newFunction builds the invoker of function name, of any kind. The closer
// releases what the invoker holds (runtime processes, a NATS connection);
// it is never nil, and the caller closes it after the last Invoke. A runtime
// function's processes start here.
func newFunction(name string, f config.Function, cfg *config.Config, log *slog.Logger) (mapping.Invoker, io.Closer, error) {
	flog := log.With("function", name)
	switch f.Kind() {
	case config.FunctionHTTP:
		inv, err := httpfunc.New(httpfunc.Config{
			URL:     f.HTTP.URL,
			Timeout: f.Timeout(),
			Headers: secretMap(f.HTTP.Headers),
			Logger:  flog,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("function %s: %w", name, err)
		}
		return inv, noClose, nil

	case config.FunctionLambda:
		acfg, err := awsConfig(context.Background(), cfg.AWS)
		if err != nil {
			return nil, nil, fmt.Errorf("function %s: %w", name, err)
		}
		client := lambda.NewFromConfig(acfg, func(o *lambda.Options) {
			o.BaseEndpoint = endpoint(cfg.AWS.Endpoints.Lambda)
			// A function named by its ARN lives in the ARN's region.
			if r := arnRegion(f.Lambda.FunctionName); r != "" {
				o.Region = r
			}
		})
		inv, err := lambdafunc.New(client, lambdafunc.Config{
			FunctionName: f.Lambda.FunctionName,
			Qualifier:    f.Lambda.Qualifier,
			Timeout:      f.Timeout(),
			RIECompat:    f.Lambda.RIECompat,
			Logger:       flog,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("function %s: %w", name, err)
		}
		return inv, noClose, nil

	case config.FunctionRuntime:
		r := f.Runtime
		rc := runtimeapi.Config{
			Name:    name,
			Command: r.Command,
			Env:     secretMap(r.Environment),
			Timeout: f.Timeout(),
			Region:  cfg.AWS.Region,
			Logger:  log,
		}
		if r.Concurrency != nil {
			rc.Concurrency = *r.Concurrency
		}
		if r.MemorySize != nil {
			rc.MemorySize = *r.MemorySize
		}
		inv, err := runtimeapi.New(rc)
		if err != nil {
			return nil, nil, fmt.Errorf("function %s: %w", name, err)
		}
		return inv, inv, nil

	case config.FunctionNATS:
		// Connect in the background and keep reconnecting: while NATS is
		// down, invocations fail as invoke-side errors and are retried.
		nc, err := nats.Connect(f.NATS.URL,
			nats.Name("esmd function "+name),
			nats.RetryOnFailedConnect(true),
			nats.MaxReconnects(-1),
		)
		if err != nil {
			return nil, nil, fmt.Errorf("function %s: nats connect: %w", name, err)
		}
		inv, err := natsfunc.New(nc, natsfunc.Config{Subject: f.NATS.Subject, Timeout: f.Timeout(), Logger: flog})
		if err != nil {
			nc.Close()
			return nil, nil, fmt.Errorf("function %s: %w", name, err)
		}
		return inv, closerFunc(func() error { nc.Close(); return nil }), nil

	case config.FunctionExec:
		inv, err := execfunc.New(execfunc.Config{Command: f.Exec.Command, Timeout: f.Timeout(), Logger: flog})
		if err != nil {
			return nil, nil, fmt.Errorf("function %s: %w", name, err)
		}
		return inv, noClose, nil
	}
	return nil, nil, fmt.Errorf("function %s: no kind set (http, lambda, runtime, nats or exec)", name)
}

// secretMap reads the values of a map of secrets.
func secretMap(m map[string]config.Secret) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v.Value()
	}
	return out
}

// arnRegion returns the region of a Lambda function ARN, or "" for a name.
func arnRegion(s string) string {
	parts := strings.SplitN(s, ":", 5)
	if len(parts) == 5 && parts[0] == "arn" && parts[2] == "lambda" {
		return parts[3]
	}
	return ""
}
