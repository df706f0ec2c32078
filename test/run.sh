#!/usr/bin/env bash
# Runs every test of the module with the race detector against real servers:
# installs the test servers (test/install.sh), then go vet and go test.
# Extra arguments go to `go test` (for example -run Kinesis or -v).
# With CI=true, a test whose server is missing fails instead of skipping.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '\n== %s\n' "$*"; }

say "installing test servers"
bash test/install.sh

say "go vet ./..."
go vet ./...

say "go test -race -count=1 -timeout 60m ./... $*"
log="$(mktemp "${TMPDIR:-/tmp}/esmd-test-XXXXXX.log")"
trap 'rm -f "$log"' EXIT
start=$SECONDS
set +e
go test -race -count=1 -timeout 60m "$@" ./... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

pkgs_ok=$(grep -cE '^ok ' "$log" || true)
pkgs_fail=$(grep -cE '^FAIL\s' "$log" || true)
pkgs_none=$(grep -cE '^\?\s' "$log" || true)
say "summary: ${pkgs_ok} packages ok, ${pkgs_fail} failed, ${pkgs_none} without tests, $((SECONDS - start))s, exit ${status}"
if [[ $status -ne 0 ]]; then
  grep -E '^(--- FAIL|FAIL|panic:)' "$log" | sed 's/^/  /' || true
fi
exit "$status"
