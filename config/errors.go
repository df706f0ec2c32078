package config

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every problem found in a configuration: match
// with errors.Is(err, config.ErrInvalid).
var ErrInvalid = errors.New("invalid configuration")

// ConfigError is one problem in a configuration, at a YAML path such as
// mappings[2].BatchSize and its line (0 when unknown).
type ConfigError struct {
	Path string
	Line int
	Msg  string
}

// Error formats the problem as "PATH (line N): MSG".
func (e *ConfigError) Error() string {
	switch {
	case e.Path != "" && e.Line > 0:
		return fmt.Sprintf("%s (line %d): %s", e.Path, e.Line, e.Msg)
	case e.Path != "":
		return e.Path + ": " + e.Msg
	case e.Line > 0:
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

// Unwrap returns ErrInvalid.
func (e *ConfigError) Unwrap() error { return ErrInvalid }

// Errors is every problem found in one configuration, ordered by line. Parse
// and Load return it (as error) when the configuration is invalid.
type Errors []*ConfigError

// Error gives one problem per line.
func (es Errors) Error() string {
	var b strings.Builder
	for i, e := range es {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns each problem, so errors.Is(err, ErrInvalid) and
// errors.As(err, **ConfigError) work.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
