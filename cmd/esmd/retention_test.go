package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/esmd-dev/esmd/mapping"
	"github.com/esmd-dev/esmd/pollers/dynamodbstreams"
	"github.com/esmd-dev/esmd/test/fakes"
)

// retentionSource is a stream that says how long it keeps records, or fails
// to.
type retentionSource struct {
	mapping.Source
	d   time.Duration
	err error
}

func (s retentionSource) Retention(context.Context) (time.Duration, error) { return s.d, s.err }

// TestRetention checks the retention each mapping's engine is given: the
// source's, or none with a warning when the source cannot say.
func TestRetention(t *testing.T) {
	tests := []struct {
		name   string
		src    mapping.Source
		want   time.Duration
		warned bool
	}{
		{"DynamoDB Streams", &dynamodbstreams.Source{}, 24 * time.Hour, false},
		{"a stream that says", retentionSource{d: 168 * time.Hour}, 168 * time.Hour, false},
		{"a stream that cannot say", retentionSource{err: errors.New("describe stream summary: refused")}, 0, true},
		{"a source without retention", fakes.NewStream(1), 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			got := retention(t.Context(), tc.src, slog.New(slog.NewTextHandler(&logs, nil)))
			if got != tc.want {
				t.Errorf("retention = %s, want %s", got, tc.want)
			}
			if warned := strings.Contains(logs.String(), "could not read the stream's retention period"); warned != tc.warned {
				t.Errorf("warned %v, want %v: %s", warned, tc.warned, logs.String())
			}
		})
	}
}
