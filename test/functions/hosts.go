package functions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// errorBody is Lambda's error object for err.
func errorBody(typ, msg string) []byte {
	b, _ := json.Marshal(map[string]string{"errorType": typ, "errorMessage": msg})
	return b
}

// run calls HandleWith and turns a panic into an error of type "Panic".
func run(ctx context.Context, event []byte, forward string) (resp []byte, typ string, err error) {
	defer func() {
		if p := recover(); p != nil {
			typ, err = "Panic", fmt.Errorf("%v", p)
		}
	}()
	resp, err = HandleWith(ctx, event, forward)
	var he *HandlerError
	if errors.As(err, &he) {
		typ = ErrorType
	} else if err != nil {
		typ = "Error"
	}
	return resp, typ, err
}

// HTTPHandler serves the test function over HTTP the way esmd's http
// functions answer: 200 with the response; a failure as 200 with
// X-Amz-Function-Error: Unhandled and Lambda's error object; DoThrottle as
// 429 with Retry-After: 2.
func HTTPHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		event, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if c, _ := Parse(event); c.Do == DoThrottle {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write(errorBody("TooManyRequestsException", "Rate exceeded"))
			return
		}
		resp, typ, err := run(r.Context(), event, "")
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.Header().Set("X-Amz-Function-Error", "Unhandled")
			_, _ = w.Write(errorBody(typ, err.Error()))
			return
		}
		_, _ = w.Write(resp)
	})
}

// NATSService adds the test function to nc as a nats.go micro service
// answering requests on subject; events without a command are forwarded to
// forward when it is not empty (see HandleWith). A failure is answered with micro's error
// headers: Nats-Service-Error-Code is the errorType, Nats-Service-Error the
// message. Requests run concurrently; a sleep is cut short after 10 s. It
// returns once the server has the service's subscription.
func NATSService(nc *nats.Conn, subject, forward string) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:    "esmdtest",
		Version: "1.0.0",
		Endpoint: &micro.EndpointConfig{
			Subject: subject,
			// micro calls a handler for one request at a time; each
			// request runs in its own goroutine, as a concurrent function.
			// The goroutine answers on the connection, not through req:
			// micro reads req's error state once the handler returns, so
			// req.Error from a goroutine would race with it.
			Handler: micro.HandlerFunc(func(req micro.Request) {
				data, reply := req.Data(), req.Reply()
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					msg := &nats.Msg{Subject: reply}
					resp, typ, err := run(ctx, data, forward)
					if err != nil {
						msg.Header = nats.Header{micro.ErrorHeader: {err.Error()}, micro.ErrorCodeHeader: {typ}}
					} else {
						msg.Data = resp
					}
					_ = nc.PublishMsg(msg)
				}()
			}),
		},
	})
	if err != nil {
		return nil, err
	}
	// The server registers the subscription only once it reads it: a
	// request from another connection before then finds no responder.
	if err := nc.Flush(); err != nil {
		_ = svc.Stop()
		return nil, fmt.Errorf("nats service %s: flush: %w", subject, err)
	}
	return svc, nil
}
