package names

import (
	"strings"
	"testing"
)

func TestRule(t *testing.T) {
	bucket, sns := S3Bucket, SNSTopic
	for _, tt := range []struct {
		name string
		rule Rule
		s    string
		want bool
	}{
		{"topic", KafkaTopic, "orders.v1_x-y", true},
		{"topic at the limit", KafkaTopic, strings.Repeat("t", 249), true},
		{"topic over the limit", KafkaTopic, strings.Repeat("t", 250), false},
		{"empty topic", KafkaTopic, "", false},
		{"topic with a slash", KafkaTopic, "a/b", false},
		{"topic with a newline at the end", KafkaTopic, "ab\n", false},
		{"non-ASCII topic", KafkaTopic, "café", false},
		{"bucket", bucket, "my.bucket-1", true},
		{"bucket too short", bucket, "ab", false},
		{"bucket at the limit", bucket, strings.Repeat("b", 63), true},
		{"bucket over the limit", bucket, strings.Repeat("b", 64), false},
		{"bucket ending in a dot", bucket, "abc.", false},
		{"fifo topic", sns, "events.fifo", true},
		{"fifo topic at the limit", sns, strings.Repeat("e", 251) + ".fifo", true},
		{"fifo topic over the limit", sns, strings.Repeat("e", 252) + ".fifo", false},
		{"topic with a dot", sns, "a.b", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rule.MatchString(tt.s); got != tt.want {
				t.Fatalf("MatchString(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}
