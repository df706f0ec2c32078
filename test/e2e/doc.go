// Package e2e runs esmd as a separate process against real servers
// (kinesis-mock, kinesalite, moto) and checks, over the wire, what a user
// would: the events the function receives, the failure records in the
// destination, checkpoints across crashes and drains, order and counts.
//
// The scenarios are slow next to unit tests, so they live in their own
// package and share one server of each kind, started once per test binary.
package e2e
