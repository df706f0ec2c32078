#!/usr/bin/env bash
# esmd quickstart, in one command: build esmd and the example handler, start
# the handler, run esmd on examples/quickstart.yaml until every generated
# record is processed, then stop both (by PID) and show the failure records.
#
#   bash examples/quickstart.sh
#
# Environment: HANDLER_PORT (9800), QUICKSTART_OUT (/tmp/esmd-quickstart:
# state, binaries, logs and failures.jsonl; emptied first), QUICKSTART_COUNT
# (4000), QUICKSTART_RATE (200 records/s), QUICKSTART_SEED (7).
set -euo pipefail
cd "$(dirname "$0")/.."

export HANDLER_PORT="${HANDLER_PORT:-9800}"
export QUICKSTART_OUT="${QUICKSTART_OUT:-/tmp/esmd-quickstart}"
export QUICKSTART_COUNT="${QUICKSTART_COUNT:-4000}"
export QUICKSTART_RATE="${QUICKSTART_RATE:-200}"
export QUICKSTART_SEED="${QUICKSTART_SEED:-7}"
out="$QUICKSTART_OUT"
failures="$out/failures.jsonl"

rm -rf "$out"
mkdir -p "$out/bin"
echo "quickstart: building esmd and the example handler into $out/bin"
go build -o "$out/bin/esmd" ./cmd/esmd
go build -o "$out/bin/handler" ./examples/handler

hpid=""
epid=""
cleanup() {
	for pid in $epid $hpid; do
		kill "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
}
trap cleanup EXIT

"$out/bin/handler" -addr "127.0.0.1:$HANDLER_PORT" -expect "$QUICKSTART_COUNT" > >(tee "$out/handler.log") 2>&1 &
hpid=$!
for _ in $(seq 100); do
	if (echo >"/dev/tcp/127.0.0.1/$HANDLER_PORT") 2>/dev/null; then
		break
	fi
	sleep 0.1
done

echo "quickstart: esmd run -c examples/quickstart.yaml ($QUICKSTART_COUNT records at $QUICKSTART_RATE/s)"
"$out/bin/esmd" run -c examples/quickstart.yaml &
epid=$!

# esmd exits by itself once the generator is finished and every record is
# resolved. As a safeguard, once the handler has seen every record and the
# failure file holds a record per poison record, give esmd a few seconds,
# then ask it to drain (SIGTERM), which also exits 0.
deadline=$((SECONDS + QUICKSTART_COUNT / QUICKSTART_RATE * 4 + 60))
settled=""
while kill -0 "$epid" 2>/dev/null; do
	if [ -z "$settled" ] && grep -q "records seen" "$out/handler.log" 2>/dev/null; then
		poison=$(sed -n 's/.*records seen (\([0-9]*\) poison).*/\1/p' "$out/handler.log" | head -1)
		lines=0
		if [ -f "$failures" ]; then
			lines=$(wc -l <"$failures")
		fi
		if [ "${lines:-0}" -ge "${poison:-0}" ]; then
			settled=$((SECONDS + 5))
		fi
	fi
	if { [ -n "$settled" ] && [ "$SECONDS" -ge "$settled" ]; } || [ "$SECONDS" -ge "$deadline" ]; then
		echo "quickstart: asking esmd to drain"
		kill -TERM "$epid" 2>/dev/null || true
		break
	fi
	sleep 0.2
done
code=0
wait "$epid" || code=$?
epid=""
kill -TERM "$hpid" 2>/dev/null || true
wait "$hpid" 2>/dev/null || true
hpid=""

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
