// Package invoke is the home of esmd's function invokers: the ways esmd calls
// the function of a mapping with an event. Each implementation lives in its
// own subpackage and satisfies mapping.Invoker; httpfunc POSTs the event to an
// HTTP endpoint. This package holds no code of its own.
package invoke
