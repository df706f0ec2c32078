package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that the loader never panics, that every problem it
// reports is a located *ConfigError wrapping ErrInvalid, and that a valid
// configuration renders to YAML that parses back to the same rendering.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	files = append(files, "../examples/esmd.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(""))
	f.Add([]byte("mappings: [{EventSourceArn: \"${X:-arn:aws:sqs:us-east-1:123456789012:q}\", FunctionName: f}]\nfunctions: {f: {exec: {command: [x]}}}"))
	f.Add([]byte("a: &a [*a]"))
	f.Add([]byte("mappings:\n  - <<: [{BatchSize: 1}, {BatchSize: 2}]\n"))
	env := func(name string) (string, bool) {
		if strings.HasPrefix(name, "SET") {
			return "1", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		cfg, err := Parse(data, "fuzz.yaml", env)
		if err != nil {
			if cfg != nil {
				t.Fatal("config returned with errors")
			}
			var errs Errors
			if !errors.As(err, &errs) || len(errs) == 0 {
				t.Fatalf("error %T %v is not a non-empty Errors", err, err)
			}
			for _, e := range errs {
				if !errors.Is(e, ErrInvalid) || e.Msg == "" {
					t.Fatalf("bad problem %#v", e)
				}
			}
			return
		}
		out := cfg.String()
		if strings.Contains(out, "$") {
			return // a rendered $ would be read as interpolation
		}
		again, err := Parse([]byte(out), "rendered.yaml", env)
		if err != nil {
			t.Fatalf("rendered config does not parse: %v\n%s", err, out)
		}
		if again.String() != out {
			t.Fatalf("round trip changed the config:\n%s\n---\n%s", out, again.String())
		}
		for i := range cfg.Mappings {
			s := cfg.Mappings[i].Settings()
			if s.Name == "" || s.UUID == "" || s.BatchSize < 1 {
				t.Fatalf("incomplete settings %+v", s)
			}
		}
	})
}

// FuzzInterpolate checks that Interpolate never panics, reports only valid
// and distinct variable names, and that escaping every $ as $$ gives the
// input back.
func FuzzInterpolate(f *testing.F) {
	for _, s := range []string{"", "plain", "${A}", "${A:-b}", "$$", "$${A}", "${", "${}", "x${A}y${B:-c}$", "${A:-${B}}", "$$$"} {
		f.Add(s)
	}
	env := func(name string) (string, bool) {
		switch {
		case strings.HasPrefix(name, "A"):
			return "value", true
		case strings.HasPrefix(name, "E"):
			return "", true
		}
		return "", false
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, missing, _ := Interpolate(s, env)
		seen := map[string]bool{}
		for _, m := range missing {
			if !validVarName(m) || seen[m] {
				t.Fatalf("missing %q: invalid or repeated", missing)
			}
			if _, ok := env(m); ok {
				t.Fatalf("%s is set but reported missing", m)
			}
			seen[m] = true
		}
		if !strings.Contains(s, "${") && !strings.Contains(s, "$$") {
			if got, _, err := Interpolate(s, env); err != nil || got != s {
				t.Fatalf("Interpolate(%q) = %q, %v: a string without references must not change", s, got, err)
			}
		}
		got, missing, err := Interpolate(strings.ReplaceAll(s, "$", "$$"), env)
		if err != nil || len(missing) > 0 || got != s {
			t.Fatalf("escaped round trip of %q: got %q, missing %v, err %v", s, got, missing, err)
		}
	})
}
