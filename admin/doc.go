// Package admin serves esmd's operator endpoints on server.listen:
// Prometheus metrics at /metrics, liveness at /healthz, readiness at
// /readyz, and the mappings in AWS's EventSourceMappingConfiguration shape
// at /mappings and /mappings/{uuid}.
//
// The package reads the engine's counters and status at request time
// through the small Source interface; it adds nothing to the engine's hot
// path. Every endpoint can be guarded by a bearer token, which is required
// when the server listens on a non-loopback address.
package admin
