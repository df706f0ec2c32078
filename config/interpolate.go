package config

import (
	"fmt"
	"strings"
)

// Interpolate expands ${VAR} and ${VAR:-default} in s with getenv. A
// default applies when VAR is unset or empty; $$ stands for one literal $;
// any other $ is kept as is. It returns the names of every variable that is
// neither set nor defaulted, in order of appearance and without repeats, and
// a non-nil error for malformed syntax (an unterminated ${ or an invalid
// variable name). On any problem the returned string is unspecified.
func Interpolate(s string, getenv func(string) (string, bool)) (string, []string, error) {
	if !strings.Contains(s, "$") {
		return s, nil, nil
	}
	var (
		b       strings.Builder
		missing []string
	)
	for i := 0; i < len(s); {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i += 2
			continue
		case '{':
		default:
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return "", missing, fmt.Errorf("unterminated ${ at offset %d", i)
		}
		expr := s[i+2 : i+2+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validVarName(name) {
			return "", missing, fmt.Errorf("invalid variable reference ${%s}: a name is letters, digits and _, not starting with a digit", expr)
		}
		v, ok := getenv(name)
		switch {
		case hasDef && (!ok || v == ""):
			b.WriteString(def)
		case ok:
			b.WriteString(v)
		default:
			if !contains(missing, name) {
				missing = append(missing, name)
			}
		}
		i += 2 + end + 1
	}
	return b.String(), missing, nil
}

func validVarName(n string) bool {
	if n == "" {
		return false
	}
	for i, r := range n {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
