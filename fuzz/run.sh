#!/bin/sh
# Run each libFuzzer harness for a bounded time, one after the other:
#   run.sh BUILD_FUZZ_DIR SECONDS NAME...
# Seeds come from fuzz/corpus/NAME, new inputs go to BUILD_FUZZ_DIR/corpus/NAME,
# a finding to BUILD_FUZZ_DIR/NAME-crash-* (and the run fails); the log of
# each run is BUILD_FUZZ_DIR/NAME.log; fuzz/NAME.dict, if there is one, is
# the run's dictionary.  Prints the executions of each run.
dir=$1
secs=$2
shift 2
fail=0
for name in "$@"; do
	mkdir -p "$dir/corpus/$name"
	log="$dir/$name.log"
	dict=
	[ -f "fuzz/$name.dict" ] && dict="-dict=fuzz/$name.dict"
	if "$dir/${name}_fuzz" -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 \
		-print_final_stats=1 -artifact_prefix="$dir/$name-" $dict \
		"$dir/corpus/$name" "fuzz/corpus/$name" >"$log" 2>&1; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "fuzz $name: ${secs}s, $execs executions, nothing found"
	else
		echo "fuzz $name: FAILED, see $log"
		grep -A12 -m1 'ERROR\|FUZZ CHECK FAILED' "$log"
		fail=1
	fi
done
exit $fail
