#!/usr/bin/env bash
# Checks esmd's code and dependencies against the Go vulnerability database.
# Exits non-zero when a vulnerability is reachable from esmd's code.
# Needs the Go module proxy (for govulncheck) and vuln.go.dev.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run golang.org/x/vuln/cmd/govulncheck@latest ./...
