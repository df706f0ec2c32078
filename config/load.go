package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Load reads the configuration file at path and parses it with the process
// environment; see Parse. A file that cannot be read gives an error that
// does not wrap ErrInvalid.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path, os.LookupEnv)
}

// Parse decodes, completes and validates a configuration. getenv looks up
// variables for ${VAR} interpolation (os.LookupEnv in production; nil
// means no variable is set); filename is used in messages only.
//
// On success every default is applied and each mapping's Name, UUID,
// Source and OnFailure are set. Otherwise it returns a nil Config and an
// Errors holding every problem found, each wrapping ErrInvalid.
func Parse(data []byte, filename string, getenv func(string) (string, bool)) (*Config, error) {
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	p := &problems{lines: map[string]int{}, bad: map[string]bool{}}

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.list = append(p.list, syntaxError(filename, err))
		return nil, p.list
	}
	if line := secondDocument(data); line > 0 {
		// yaml.Unmarshal reads the first document only: the mappings of
		// the others would never run, without a word.
		p.list = append(p.list, &ConfigError{Line: line, Msg: filename + " holds more than one YAML document (a --- line starts another); esmd reads one: put every section and mapping in a single document"})
		return nil, p.list
	}
	var root *yaml.Node
	if len(doc.Content) > 0 {
		root = doc.Content[0]
	}
	var cfg Config
	if root != nil && !(root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null") {
		if root.Kind != yaml.MappingNode {
			p.list = append(p.list, &ConfigError{Line: root.Line, Msg: "the top level of " + filename + " must be a mapping of sections (aws, functions, mappings, ...)"})
			return nil, p.list
		}
		w := &walker{p: p, getenv: getenv, nodes: map[int][]leaf{}, keyErrLines: map[int]bool{}, done: map[*yaml.Node]bool{}, active: map[*yaml.Node]bool{}}
		w.walk(root, reflect.TypeFor[Config](), "")
		if err := root.Decode(&cfg); err != nil {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				if !w.recursive {
					p.list = append(p.list, &ConfigError{Msg: strings.TrimPrefix(err.Error(), "yaml: ")})
				}
				return nil, p.list
			}
			for _, msg := range te.Errors {
				w.decodeError(msg)
			}
		}
		w.strictCheck(data)
	}
	cfg.complete(p)
	if len(p.list) > 0 {
		sort.SliceStable(p.list, func(i, j int) bool {
			a, b := p.list[i].Line, p.list[j].Line
			if a == 0 || b == 0 {
				return a != 0 && b == 0
			}
			return a < b
		})
		return nil, p.list
	}
	return &cfg, nil
}

// secondDocument returns the line where a second YAML document of data
// starts, or 0 when data holds one document (or none). An empty document
// after a trailing --- counts as none.
func secondDocument(data []byte) int {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first, second yaml.Node
	if dec.Decode(&first) != nil {
		return 0
	}
	if err := dec.Decode(&second); errors.Is(err, io.EOF) {
		return 0
	} else if err != nil {
		// A second document that does not parse is one too, and its
		// mappings would be lost just the same.
		return secondMarker(data)
	}
	if len(second.Content) == 0 {
		return 0
	}
	if n := second.Content[0]; n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return 0
	}
	return max(second.Line, 1)
}

// secondMarker returns the line of the --- that starts data's second
// document (a leading --- starts the first), or 1 when none is found.
func secondMarker(data []byte) int {
	content := false
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimRight(line, " \t\r")
		switch {
		case t == "---" || strings.HasPrefix(t, "--- "):
			if content {
				return i + 1
			}
			content = true // a leading marker: the first document's
		case t != "" && !strings.HasPrefix(strings.TrimSpace(t), "#"):
			content = true
		}
	}
	return 1
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxError(filename string, err error) *ConfigError {
	msg := err.Error()
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &ConfigError{Line: line, Msg: fmt.Sprintf("%s is not valid YAML: %s", filename, m[2])}
	}
	return &ConfigError{Msg: fmt.Sprintf("%s is not valid YAML: %s", filename, strings.TrimPrefix(msg, "yaml: "))}
}

// problems collects every ConfigError of one Parse.
type problems struct {
	// lines maps a YAML path to the line of its key.
	lines map[string]int
	list  Errors
	// bad holds the paths that failed to decode or interpolate: validation
	// says nothing more about them or below them.
	bad map[string]bool
}

// add reports a problem at path, on the line of path or of its nearest
// ancestor present in the file.
func (p *problems) add(path, format string, args ...any) {
	for q := path; q != ""; q = parentPath(q) {
		if p.bad[q] {
			return
		}
	}
	p.list = append(p.list, &ConfigError{Path: path, Line: p.line(path), Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) line(path string) int {
	for q := path; q != ""; q = parentPath(q) {
		if l, ok := p.lines[q]; ok {
			return l
		}
	}
	return 0
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// leaf is a node of the document, indexed by line to place decoding errors.
type leaf struct {
	path   string
	value  string
	column int
}

// walker visits the document along the Config type: it indexes the line of
// every path, interpolates ${VAR} in scalars, and reports unknown and
// duplicate keys. It is the strict half of decoding: yaml.v3's
// KnownFields(true) applies only to a Decoder reading text, not to a Node
// that was interpolated, so the walker checks keys against the same struct
// tags, with the YAML path in each message.
type walker struct {
	p           *problems
	getenv      func(string) (string, bool)
	nodes       map[int][]leaf
	keyErrLines map[int]bool
	done        map[*yaml.Node]bool
	active      map[*yaml.Node]bool
	visits      int
	recursive   bool
}

// maxVisits bounds the nodes the walker visits, aliases expanded: a small
// file must not expand exponentially.
const maxVisits = 100000

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if !w.enter(n, path) {
		return
	}
	defer delete(w.active, n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	w.nodes[n.Line] = append(w.nodes[n.Line], leaf{path: path, value: n.Value, column: n.Column})
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		w.scalar(n, path)
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind == yaml.MappingNode {
			w.mapping(n, t, path, map[string]bool{})
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := joinPath(path, k.Value)
			if seen[k.Value] {
				w.keyError(k, p, fmt.Sprintf("key %q appears twice", k.Value))
				n.Content = append(n.Content[:i:i], n.Content[i+2:]...)
				i -= 2
				continue
			}
			seen[k.Value] = true
			w.p.lines[p] = k.Line
			w.walk(v, t.Elem(), p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, e := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			w.p.lines[p] = e.Line
			w.walk(e, t.Elem(), p)
		}
	default:
		w.scalar(n, path)
	}
}

func (w *walker) mapping(n *yaml.Node, t reflect.Type, path string, seen map[string]bool) {
	fields := yamlFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			// Merged keys may be overridden by the mapping's own keys.
			w.merge(v, t, path)
			continue
		}
		p := joinPath(path, k.Value)
		ft, ok := fields.types[k.Value]
		if !ok {
			w.keyError(k, p, unknownKeyMsg(k.Value, fields.names))
			continue
		}
		if seen != nil {
			if seen[k.Value] {
				w.keyError(k, p, fmt.Sprintf("key %q appears twice", k.Value))
				// yaml.v3 drops a whole mapping with a repeated key: drop
				// the repeat instead, so the rest is still checked.
				n.Content = append(n.Content[:i:i], n.Content[i+2:]...)
				i -= 2
				continue
			}
			seen[k.Value] = true
		}
		if _, ok := w.p.lines[p]; !ok || seen != nil {
			w.p.lines[p] = k.Line
		}
		w.walk(v, ft, p)
	}
}

func (w *walker) merge(v *yaml.Node, t reflect.Type, path string) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if !w.enter(v, path) {
		return
	}
	defer delete(w.active, v)
	switch v.Kind {
	case yaml.MappingNode:
		w.mapping(v, t, path, nil)
	case yaml.SequenceNode:
		for _, e := range v.Content {
			w.merge(e, t, path)
		}
	}
}

// enter marks n as being visited; it reports an alias that contains itself
// and returns false for it.
func (w *walker) enter(n *yaml.Node, path string) bool {
	w.visits++
	if w.visits > maxVisits {
		if w.visits == maxVisits+1 {
			w.p.list = append(w.p.list, &ConfigError{Path: path, Line: n.Line, Msg: "the document expands to too many nodes through aliases"})
		}
		return false
	}
	if w.active[n] {
		w.recursive = true
		w.keyErrLines[n.Line] = true
		w.p.list = append(w.p.list, &ConfigError{Path: path, Line: n.Line, Msg: "an alias refers to a node that contains it"})
		w.p.bad[path] = true
		return false
	}
	w.active[n] = true
	return true
}

func (w *walker) keyError(k *yaml.Node, path, msg string) {
	w.keyErrLines[k.Line] = true
	w.p.list = append(w.p.list, &ConfigError{Path: path, Line: k.Line, Msg: msg})
}

// scalar interpolates a scalar once (an anchored node may be reached again
// through an alias).
func (w *walker) scalar(n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode || w.done[n] || !strings.Contains(n.Value, "$") {
		return
	}
	w.done[n] = true
	v, missing, err := Interpolate(n.Value, w.getenv)
	if err != nil {
		w.p.list = append(w.p.list, &ConfigError{Path: path, Line: n.Line, Msg: err.Error()})
		w.p.bad[path] = true
		return
	}
	for _, name := range missing {
		w.p.list = append(w.p.list, &ConfigError{Path: path, Line: n.Line,
			Msg: fmt.Sprintf("environment variable %s is not set (write ${%s:-default} to give a default)", name, name)})
		w.p.bad[path] = true
	}
	n.Value = v
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 && n.Tag == "!!str" {
		// A plain scalar is typed by its expanded text: BatchSize: ${N} is an int.
		n.Tag = ""
	}
}

var (
	yamlTypeErrRE = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `(.*)`)? into (.+)$")
	ownErrRE      = regexp.MustCompile(`^line (\d+): column (\d+): (.*)$`)
	lineErrRE     = regexp.MustCompile(`^line (\d+): (.*)$`)
)

// decodeError turns one of yaml.v3's collected decoding errors into a
// ConfigError with the path of the node it is about.
func (w *walker) decodeError(msg string) {
	var (
		line int
		path string
		text = msg
	)
	if m := ownErrRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		col, _ := strconv.Atoi(m[2])
		path = w.find(line, func(l leaf) bool { return l.column == col })
		text = m[3]
	} else if m := yamlTypeErrRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		tag, val, into := m[2], m[3], m[4]
		match := func(l leaf) bool {
			if prefix, ok := strings.CutSuffix(val, "..."); ok {
				return strings.HasPrefix(l.value, prefix)
			}
			return l.value == val
		}
		path = w.find(line, match)
		for _, l := range w.nodes[line] {
			if l.path == path && match(l) {
				val = l.value // yaml.v3 shortens values in its messages
				break
			}
		}
		text = fmt.Sprintf("expected %s, got %s", describeGoType(into), describeYAML(tag, val))
	} else if m := lineErrRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		if w.keyErrLines[line] {
			return // already reported with its path
		}
		path = w.find(line, func(leaf) bool { return true })
		text = m[2]
	}
	if path != "" {
		w.p.bad[path] = true
	}
	w.p.list = append(w.p.list, &ConfigError{Path: path, Line: line, Msg: text})
}

// find returns the path of the first indexed node on line that matches, or
// of the first node on that line.
func (w *walker) find(line int, match func(leaf) bool) string {
	ls := w.nodes[line]
	for _, l := range ls {
		if match(l) {
			return l.path
		}
	}
	if len(ls) > 0 {
		return ls[0].path
	}
	return ""
}

// strictCheck runs yaml.v3's own KnownFields(true) decoding over the raw
// text as a second line of defence: an unknown field it finds that the
// walker did not is still reported.
func (w *walker) strictCheck(data []byte) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var shadow Config
	err := dec.Decode(&shadow)
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return
	}
	for _, msg := range te.Errors {
		m := lineErrRE.FindStringSubmatch(msg)
		if m == nil || !strings.HasPrefix(m[2], "field ") || !strings.Contains(m[2], " not found in type ") {
			continue
		}
		line, _ := strconv.Atoi(m[1])
		if w.keyErrLines[line] {
			continue
		}
		w.keyErrLines[line] = true
		w.p.list = append(w.p.list, &ConfigError{Line: line, Path: w.find(line, func(leaf) bool { return true }), Msg: "unknown key: " + m[2]})
	}
}

func describeGoType(t string) string {
	t = strings.TrimLeft(t, "*")
	switch {
	case t == "int" || strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "an integer"
	case t == "bool":
		return "true or false"
	case t == "string" || t == "config.Secret":
		return "a string"
	case t == "float64" || t == "float32":
		return "a number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "config."):
		return "a mapping"
	}
	return t
}

func describeYAML(tag, val string) string {
	switch tag {
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	case "str":
		return strconv.Quote(val)
	case "null":
		return "null"
	}
	return val
}

type fieldSet struct {
	types map[string]reflect.Type
	names []string
}

var fieldCache sync.Map // reflect.Type -> fieldSet

// yamlFields lists the YAML keys of struct type t.
func yamlFields(t reflect.Type) fieldSet {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(fieldSet)
	}
	fs := fieldSet{types: map[string]reflect.Type{}}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fs.types[name] = f.Type
		fs.names = append(fs.names, name)
	}
	fieldCache.Store(t, fs)
	return fs
}

func unknownKeyMsg(key string, known []string) string {
	for _, k := range known {
		if strings.EqualFold(k, key) || editDistance(k, key) <= min(2, len(key)/4) {
			return fmt.Sprintf("unknown key %q (did you mean %q?)", key, k)
		}
	}
	return fmt.Sprintf("unknown key %q; expected one of: %s", key, strings.Join(known, ", "))
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
