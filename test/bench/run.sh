#!/usr/bin/env bash
# Runs esmd's performance benchmarks and prints a summary table: each target
# of the load-testing issue with its measured value (medians of repeated
# runs), each measured in this one run together with its baseline.
#
#   bash test/bench/run.sh            # everything (about 5 minutes)
#   PAIRS=3 bash test/bench/run.sh    # fewer engine/bare-loop pairs
#
# Needs kinesalite, moto and ElasticMQ (bash test/install.sh); a missing
# one fails the run. The machine should be otherwise
# idle: the targets are ratios and per-record costs on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
PAIRS="${PAIRS:-7}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$work/results.tsv"
: >"$results"

echo "== engine: generator -> engine -> HTTP no-op sink, paired with the bare POST loop ($PAIRS pairs)" >&2
go test -count=1 -run '^$' -bench '^BenchmarkEngineRatio$' -benchtime="${PAIRS}x" -timeout 30m ./test/bench | tee "$work/engine.txt" >&2

# median METRIC BENCH [FILE]: the median of METRIC over the BENCH lines of
# FILE (the engine run's output by default).
median() {
	awk -v b="^$2-" -v m="$1" '$1 ~ b { for (i = 2; i < NF; i++) if ($(i+1) == m) print $i }' "${3:-$work/engine.txt}" |
		sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2] + v[NR/2+1]) / 2 }'
}
{
	printf 'engine\tthroughput\t%s\trecords/s\n' "$(median records/s BenchmarkEngineRatio)"
	printf 'engine\tbare POST loop\t%s\trecords/s\n' "$(median bare-records/s BenchmarkEngineRatio)"
	printf 'engine\tratio to bare POST loop\t%s\tx\n' "$(median ratio BenchmarkEngineRatio)"
	printf 'engine\tbare POST loop with esmd'"'"'s HTTP client\t%s\trecords/s\n' "$(median strict-bare-records/s BenchmarkEngineRatio)"
	printf 'engine\tratio to bare loop with esmd'"'"'s HTTP client\t%s\tx\n' "$(median strict-ratio BenchmarkEngineRatio)"
	printf 'engine\tallocations\t%s\tallocs/record\n' "$(median allocs/record BenchmarkEngineRatio)"
	printf 'engine\tgoroutines at most (400000 records)\t%s\tgoroutines\n' "$(median goroutines BenchmarkEngineRatio)"
	printf 'engine\tengine process CPU\t%s\tus/record\n' "$(median cpu-us/record BenchmarkEngineRatio)"
	printf 'engine\tbare loop process CPU\t%s\tus/record\n' "$(median bare-cpu-us/record BenchmarkEngineRatio)"
	printf 'engine\tsink CPU, engine run\t%s\tus/record\n' "$(median sink-cpu-us/record BenchmarkEngineRatio)"
	printf 'engine\tsink CPU, bare loop run\t%s\tus/record\n' "$(median bare-sink-cpu-us/record BenchmarkEngineRatio)"
	printf 'engine\tbare loop with esmd'"'"'s HTTP client, process CPU\t%s\tus/record\n' "$(median strict-bare-cpu-us/record BenchmarkEngineRatio)"
	printf 'engine\tsink CPU, bare loop with esmd'"'"'s HTTP client run\t%s\tus/record\n' "$(median strict-bare-sink-cpu-us/record BenchmarkEngineRatio)"
} >>"$results"

echo "== Kinesis (kinesalite), latency and scale" >&2
CI=true ESMD_BENCH=1 ESMD_BENCH_OUT="$results" go test -count=1 -run '^(TestKinesisThroughput|TestLatency|TestScale)$' -v -timeout 30m ./test/bench >&2

echo "== SQS: a raw receive-and-delete loop and esmd (at its five pollers, and scaling as Lambda does), on moto and ElasticMQ (3 rounds each)" >&2
CI=true go test -count=1 -run '^$' -bench '^BenchmarkSQSThroughput$' -benchtime=3x -timeout 30m ./pollers/sqs | tee "$work/sqs.txt" >&2
for srv in moto elasticmq; do
	{
		printf 'sqs\tratio to raw loop (%s)\t%s\tx\n' "$srv" "$(median esmd/raw "BenchmarkSQSThroughput/$srv" "$work/sqs.txt")"
		printf 'sqs\tesmd, 5 pollers (%s)\t%s\tmsgs/s\n' "$srv" "$(median esmd-msgs/s "BenchmarkSQSThroughput/$srv" "$work/sqs.txt")"
		printf 'sqs\traw loop, 5 workers (%s)\t%s\tmsgs/s\n' "$srv" "$(median raw-msgs/s "BenchmarkSQSThroughput/$srv" "$work/sqs.txt")"
		printf 'sqs\tratio to raw loop with Lambda'"'"'s scaling (%s)\t%s\tx\n' "$srv" "$(median scaling/raw "BenchmarkSQSThroughput/$srv" "$work/sqs.txt")"
		printf 'sqs\tesmd with Lambda'"'"'s scaling (%s)\t%s\tmsgs/s\n' "$srv" "$(median scaling-msgs/s "BenchmarkSQSThroughput/$srv" "$work/sqs.txt")"
	} >>"$results"
done

# value BENCH METRIC
value() { awk -F'\t' -v b="$1" -v m="$2" '$1 == b && $2 == m { print $3 }' "$results" | tail -1; }
# row NAME MEASURED UNIT GOAL OP LIMIT: OP is ge or le.
row() {
	local verdict
	verdict=$(awk -v v="$2" -v op="$5" -v l="$6" 'BEGIN { if (v == "" || v == "nan") print "n/a"; else if ((op == "ge" && v + 0 >= l + 0) || (op == "le" && v + 0 <= l + 0)) print "met"; else print "MISSED" }')
	printf '%-44s %14s %-12s %-14s %s\n' "$1" "$2" "$3" "$4" "$verdict"
}
echo
printf '%-44s %14s %-12s %-14s %s\n' "target" "measured" "unit" "goal" "verdict"
printf '%s\n' "--------------------------------------------------------------------------------------------------"
row "engine throughput" "$(value engine throughput)" "records/s" ">= 500000" ge 500000
row "engine / bare POST loop (Go's client)" "$(value engine 'ratio to bare POST loop')" "x" ">= 0.8" ge 0.8
row "engine / bare loop with esmd's client" "$(value engine "ratio to bare loop with esmd's HTTP client")" "x" ">= 0.8" ge 0.8
row "engine allocations" "$(value engine allocations)" "per record" "<= 2" le 2
row "engine goroutines (no per-record ones)" "$(value engine 'goroutines at most (400000 records)')" "max" "<= 100" le 100
row "Kinesis esmd / raw reader (paired median)" "$(value kinesis 'ratio to raw reader')" "x" ">= 0.9" ge 0.9
row "Kinesis, ratio of the medians" "$(value kinesis 'ratio of the medians')" "x" "reported" ge 0
row "Kinesis process CPU" "$(value kinesis 'process CPU')" "us/record" "<= 5" le 5
row "Kinesis peak RSS" "$(value kinesis 'peak RSS')" "MiB" "<= 50" le 50
row "Kinesis records delivered" "$(value kinesis 'records delivered')" "records" "= 200000" ge 200000
row "latency put-to-invoke p50" "$(value latency 'put-to-invoke p50')" "ms" "<= 150" le 150
row "latency put-to-invoke p99" "$(value latency 'put-to-invoke p99')" "ms" "<= 400" le 400
row "latency worst of first 5 after idle" "$(value latency 'worst of the first 5 after idle')" "ms" "<= 400" le 400
row "scale RSS, 1,000 idle shards" "$(value scale 'RSS with 1000 idle shards')" "MiB" "<= 143 (150 MB)" le 143
row "scale RSS, 10,000 idle shards (runs)" "$(value scale 'RSS with 10000 idle shards')" "MiB" "runs" ge 0
row "scale memory per shard" "$(value scale 'memory per shard')" "KiB" "reported" ge 0
row "SQS esmd / raw loop, 5 each (moto)" "$(value sqs 'ratio to raw loop (moto)')" "x" ">= 0.8" ge 0.8
row "SQS esmd / raw loop, 5 each (ElasticMQ)" "$(value sqs 'ratio to raw loop (elasticmq)')" "x" ">= 0.8" ge 0.8
row "SQS, esmd scaling as Lambda (moto)" "$(value sqs "ratio to raw loop with Lambda's scaling (moto)")" "x" "reported" ge 0
row "SQS, esmd scaling as Lambda (ElasticMQ)" "$(value sqs "ratio to raw loop with Lambda's scaling (elasticmq)")" "x" "reported" ge 0
echo
echo "raw values:"
cat "$results"
