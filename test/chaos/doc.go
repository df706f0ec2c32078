// Package chaos holds the tests that break things around a running esmd:
// kill -9 at random points, servers that vanish, reset connections, answer
// slowly or cut their responses, functions that hang, crash or answer
// nonsense, checkpoint files that cannot be written or are damaged, hostile
// input, and the security promises (loopback listeners, no secret in any
// output, a non-root image).
//
// Each scenario runs esmd as a process against the real test servers
// (kinesalite, moto) and checks that nothing is lost, that nothing is
// dropped silently, that duplicates stay within the engine's bound, and that
// esmd recovers on its own, logging once per outage.
//
// The default run is sized for CI (a few minutes under -race). The full
// lengths (50,000 records and 20 crashes, 30 s outages) run with
//
//	go test ./test/chaos -chaos.full -timeout 60m
//
// Each scenario logs one results row (RESULT | scenario | iterations |
// records | lost | duplicates | recovery), which docs/RELIABILITY.md collects.
package chaos
