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

# The two suites that run esmd as processes against shared servers (e2e and
# chaos) each load both cores; run alone, one after the other, after the
# rest, so that neither starves the other's servers.
heavy=(./test/e2e ./test/chaos)
mapfile -t light < <(go list ./... | grep -v -e '/test/e2e$' -e '/test/chaos$')
log="$(mktemp "${TMPDIR:-/tmp}/esmd-test-XXXXXX.log")"
trap 'rm -f "$log"' EXIT
start=$SECONDS
status=0
set +e
for pkgs in "${light[*]}" "${heavy[0]}" "${heavy[1]}"; do
  say "go test -race -count=1 -timeout 60m $* ${pkgs:0:60}..."
  # shellcheck disable=SC2086
  go test -race -count=1 -timeout 60m "$@" $pkgs 2>&1 | tee -a "$log"
  s=${PIPESTATUS[0]}
  [[ $s -ne 0 ]] && status=$s
done
set -e

pkgs_ok=$(grep -cE '^ok ' "$log" || true)
pkgs_fail=$(grep -cE '^FAIL\s' "$log" || true)
pkgs_none=$(grep -cE '^\?\s' "$log" || true)
say "summary: ${pkgs_ok} packages ok, ${pkgs_fail} failed, ${pkgs_none} without tests, $((SECONDS - start))s, exit ${status}"
if [[ $status -ne 0 ]]; then
  grep -E '^(--- FAIL|FAIL|panic:)' "$log" | sed 's/^/  /' || true
fi
exit "$status"
