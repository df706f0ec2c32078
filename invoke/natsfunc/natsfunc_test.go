package natsfunc

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/esmd-dev/esmd/mapping"
)

func TestOutcome(t *testing.T) {
	tests := []struct {
		name   string
		header nats.Header
		data   string
		resp   *mapping.Response
		fe     *mapping.FunctionError
	}{
		{name: "reply is the response", data: `{"batchItemFailures":[]}`,
			resp: &mapping.Response{Body: []byte(`{"batchItemFailures":[]}`), StatusCode: 200}},
		{name: "micro error headers", header: nats.Header{"Nats-Service-Error-Code": {"500"}, "Nats-Service-Error": {"boom"}},
			fe: &mapping.FunctionError{Kind: "Unhandled", Type: "500", Message: "boom", StatusCode: 200}},
		{name: "Lambda error object gives the type", header: nats.Header{"Nats-Service-Error": {"failed"}},
			data: `{"errorType":"ValueError","errorMessage":"bad record"}`,
			fe:   &mapping.FunctionError{Kind: "Unhandled", Type: "ValueError", Message: "failed", StatusCode: 200}},
		{name: "code only, message from the body", header: nats.Header{"Nats-Service-Error-Code": {"E1"}},
			data: `{"errorMessage":"Task timed out after 3.00 seconds"}`,
			fe:   &mapping.FunctionError{Kind: "Unhandled", Type: "E1", Message: "Task timed out after 3.00 seconds", StatusCode: 200, Timeout: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := outcome(&nats.Msg{Header: tt.header, Data: []byte(tt.data)})
			if tt.fe != nil {
				var fe *mapping.FunctionError
				if !errors.As(err, &fe) {
					t.Fatalf("err = %v, want a function error", err)
				}
				if d := cmp.Diff(tt.fe, fe); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
				return
			}
			if err != nil || !cmp.Equal(resp, tt.resp) {
				t.Errorf("outcome = %+v, %v; want %+v", resp, err, tt.resp)
			}
		})
	}
}

func TestNewChecks(t *testing.T) {
	if _, err := New(nil, Config{Subject: "a"}); err == nil {
		t.Error("no connection: no error")
	}
	if _, err := New(&nats.Conn{}, Config{}); err == nil {
		t.Error("no subject: no error")
	}
}
