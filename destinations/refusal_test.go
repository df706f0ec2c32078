package destinations

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/esmd-dev/esmd/mapping"
)

// TestSizeLimitLogsOncePerRecord checks that a record over SQS's or SNS's
// limit is refused permanently, with one Warn line per record however often
// the engine retries it, and that the line says why without the payload.
func TestSizeLimitLogsOncePerRecord(t *testing.T) {
	tests := []struct {
		name  string
		make  func(*slog.Logger) mapping.Destination
		limit int
		want  string
	}{
		{"sqs", func(l *slog.Logger) mapping.Destination {
			d, _ := NewSQS(queueARN, &fakeSQS{queueURL: "http://q"}, l)
			return d
		}, SQSMaxMessage, `level=WARN msg="failure record refused: over the SQS message size limit" destination=sqs queue=orders-failures shard=shardId-000000000001 condition=RetryAttemptsExhausted batch_size=2 bytes=1048577 limit=1048576`},
		{"sns", func(l *slog.Logger) mapping.Destination {
			d, _ := NewSNS(topicARN, &fakeSNS{}, l)
			return d
		}, SNSMaxMessage, `level=WARN msg="failure record refused: over the SNS message size limit" destination=sns topic=orders-failures shard=shardId-000000000001 condition=RetryAttemptsExhausted batch_size=2 bytes=262145 limit=262144`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
				ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
					if a.Key == slog.TimeKey {
						return slog.Attr{}
					}
					return a
				},
			}))
			d := tt.make(log)
			big := paddedFailure(t, tt.limit+1)
			for range 3 {
				if err := d.Send(t.Context(), big); !isPermanent(err) {
					t.Fatalf("Send = %v, want a permanent error", err)
				}
			}
			other := paddedFailure(t, tt.limit+1)
			other.RequestID = "c9b8fa9f-5a7f-4b2c-8b5c-1a2b3c4d5e70"
			_ = d.Send(t.Context(), other)
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("%d log lines, want one per refused record:\n%s", len(lines), buf.String())
			}
			if lines[0] != tt.want {
				t.Errorf("log line\n got: %s\nwant: %s", lines[0], tt.want)
			}
		})
	}
}
