#!/usr/bin/env bash
# esmd quickstart, in one command: build esmd, run it on
# examples/quickstart.yaml until every generated record is processed (esmd
# starts the example handler itself, with go run, and exits by itself),
# then show the failure records.
#
#   bash examples/quickstart.sh
#
# Environment: QUICKSTART_OUT (/tmp/esmd-quickstart: state, the binary and
# failures.jsonl; emptied first), QUICKSTART_COUNT (4000), QUICKSTART_RATE
# (200 records/s), QUICKSTART_SEED (7).
set -euo pipefail
cd "$(dirname "$0")/.."

export QUICKSTART_OUT="${QUICKSTART_OUT:-/tmp/esmd-quickstart}"
export QUICKSTART_COUNT="${QUICKSTART_COUNT:-4000}"
export QUICKSTART_RATE="${QUICKSTART_RATE:-200}"
export QUICKSTART_SEED="${QUICKSTART_SEED:-7}"
out="$QUICKSTART_OUT"
failures="$out/failures.jsonl"

rm -rf "$out"
mkdir -p "$out/bin"
echo "quickstart: building esmd into $out/bin"
go build -o "$out/bin/esmd" ./cmd/esmd

epid=""
cleanup() {
	if [ -n "$epid" ]; then
		kill "$epid" 2>/dev/null || true
		wait "$epid" 2>/dev/null || true
	fi
}
trap cleanup EXIT

echo "quickstart: esmd run -c examples/quickstart.yaml ($QUICKSTART_COUNT records at $QUICKSTART_RATE/s)"
"$out/bin/esmd" run -c examples/quickstart.yaml &
epid=$!

# esmd exits by itself once the generator is finished and every record is
# resolved. As a safeguard, past a generous deadline, ask it to drain
# (SIGTERM), which also exits 0.
deadline=$((SECONDS + QUICKSTART_COUNT / QUICKSTART_RATE * 4 + 120))
while kill -0 "$epid" 2>/dev/null; do
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "quickstart: still running past the deadline; asking esmd to drain"
		kill -TERM "$epid" 2>/dev/null || true
		break
	fi
	sleep 0.2
done
code=0
wait "$epid" || code=$?
epid=""

echo
echo "quickstart: esmd exited with code $code"
n=0
if [ -f "$failures" ]; then
	n=$(wc -l <"$failures")
fi
echo "quickstart: $n failure record(s) in $failures:"
if [ "$n" -gt 0 ]; then
	cat "$failures"
fi
exit "$code"
