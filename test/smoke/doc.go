// Package smoke holds one smoke test per real test server: each proves that
// the server speaks the wire protocol esmd uses, with the client esmd uses
// (aws-sdk-go-v2, nats.go, franz-go), and pins the server behaviour (and the
// gaps) recorded in test/SERVERS.md. The package has no non-test code.
package smoke
