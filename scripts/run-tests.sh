#!/bin/sh
# Run each Criterion suite in turn with the environment given as $1; print
# one summary line and fail if any suite failed.
env_vars=$1
shift
pass=0
fail=0
for t in "$@"; do
	echo "== $t"
	if env $env_vars "$t" --jobs 2; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAILED: $t"
	fi
done
echo "suites: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
