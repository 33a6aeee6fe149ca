#!/bin/sh
# Run every unit test binary in BUILD/tests; fail if any fails.
set -u
build=${1:-build}
failed=""
n=0
for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	n=$((n + 1))
	# modules for the plugin-host test live next to the binaries; the
	# output (the daemon's log lines included) is shown when a suite fails
	log="$t.log"
	if LABGW_TEST_MODULES="$build/tests/modules" LABGW_BUILD="$build" "$t" >"$log" 2>&1; then
		echo "$(basename "$t"): $(grep -E '^\[  PASSED  \]' "$log" | tail -n 1 | sed 's/.*PASSED *\] *//')"
	else
		cat "$log"
		failed="$failed $(basename "$t")"
	fi
done
if [ "$n" -eq 0 ]; then
	echo "no unit tests found in $build/tests" >&2
	exit 1
fi
if [ -n "$failed" ]; then
	echo "unit tests failed:$failed" >&2
	exit 1
fi
echo "unit tests: $n suites passed"
