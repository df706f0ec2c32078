package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const redacted = "<redacted>"

// Secret is a string that is never shown: String, GoString, YAML, JSON and
// slog output all give "<redacted>" (or "" when it is empty). Use Value to
// read it.
type Secret string

// Value returns the secret itself.
func (s Secret) Value() string { return string(s) }

// String returns "<redacted>", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redacted
}

// GoString keeps %#v from showing the value.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue keeps slog from showing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML writes the redacted form.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalJSON writes the redacted form.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// MarshalText writes the redacted form (map keys, encoding/xml, ...).
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalYAML reads any scalar as the secret's value.
func (s *Secret) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected a string")
	}
	*s = Secret(n.Value)
	return nil
}

// Duration is a time.Duration written as a Go duration string ("30s",
// "500ms", "1h").
type Duration time.Duration

// Std returns d as a time.Duration; a nil *Duration gives 0.
func (d *Duration) Std() time.Duration {
	if d == nil {
		return 0
	}
	return time.Duration(*d)
}

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d as a duration string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalText writes d as a duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return typeError(n, "expected a duration like 30s or 500ms")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return typeError(n, fmt.Sprintf("%q is not a duration (use a Go duration like 30s or 500ms)", n.Value))
	}
	*d = Duration(v)
	return nil
}

func newDuration(v time.Duration) *Duration {
	d := Duration(v)
	return &d
}

// Timestamp is StartingPositionTimestamp: Unix seconds (CloudFormation's
// form, fractions allowed) or an RFC 3339 string.
type Timestamp struct{ time.Time }

// MarshalYAML writes the RFC 3339 form.
func (t Timestamp) MarshalYAML() (any, error) { return t.UTC().Format(time.RFC3339Nano), nil }

// UnmarshalYAML accepts Unix seconds or RFC 3339.
func (t *Timestamp) UnmarshalYAML(n *yaml.Node) error {
	const want = "expected Unix seconds or an RFC 3339 time"
	if n.Kind != yaml.ScalarNode {
		return typeError(n, want)
	}
	v := strings.TrimSpace(n.Value)
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
			return typeError(n, fmt.Sprintf("%s is not a valid Unix time", v))
		}
		sec, frac := math.Modf(f)
		t.Time = time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC()
		return nil
	}
	p, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return typeError(n, fmt.Sprintf("%q is not a valid time: %s", v, want))
	}
	t.Time = p
	return nil
}

// typeError reports a decoding problem in the form yaml.v3 collects, so
// decoding continues and the problem is reported with every other one.
func typeError(n *yaml.Node, msg string) error {
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %s", n.Line, n.Column, msg)}}
}
