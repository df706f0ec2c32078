// Package names checks names against rules of the form "these characters,
// between min and max of them", the form of most AWS naming rules.
package names

import "regexp"

// Rule is a pattern with a length range. The pattern repeats its character
// classes with * or +, and the length is checked apart: a regexp with a
// counted repetition such as {1,255} compiles to one instruction per count,
// and the few such patterns esmd had held a megabyte of memory for the
// daemon's whole life.
type Rule struct {
	re       *regexp.Regexp
	min, max int
}

// New compiles pattern, which must match whole names (^...$), for names of
// min to max bytes. It panics if pattern does not compile.
func New(pattern string, min, max int) Rule {
	return Rule{re: regexp.MustCompile(pattern), min: min, max: max}
}

// MatchString reports whether s is between the rule's lengths and matches
// its pattern.
func (r Rule) MatchString(s string) bool {
	return len(s) >= r.min && len(s) <= r.max && r.re.MatchString(s)
}

// Rules that more than one package applies, or that have a test of their
// own here.
var (
	// KafkaTopic is a Kafka topic name: letters, digits, '.', '_' and '-',
	// at most 249 of them.
	KafkaTopic = New(`^[a-zA-Z0-9._-]+$`, 1, 249)
	// S3Bucket is an S3 bucket name: 3 to 63 lower-case letters, digits,
	// '.' and '-', starting and ending with a letter or digit.
	S3Bucket = New(`^[a-z0-9][a-z0-9.-]*[a-z0-9]$`, 3, 63)
	// SNSTopic is an SNS topic name: 1 to 256 letters, digits, '_' and
	// '-', counting the .fifo suffix of a FIFO topic.
	SNSTopic = New(`^[a-zA-Z0-9_-]+(\.fifo)?$`, 1, 256)
)
