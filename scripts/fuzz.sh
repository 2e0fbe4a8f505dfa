#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME (default 30s) each and
# prints the executions per target at the end. Their seed corpora
# (f.Add plus testdata/fuzz/<Target>/) already run in every `go test`.
# A crash fails the script; Go writes the crasher to
# <pkg>/testdata/fuzz/<Target>/ — fix the bug and commit it as a corpus entry.
# `make test` runs this with FUZZTIME=3s, `make fuzz` with 30s.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}

found=0
failed=0
summary=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for pkg in $($GO list ./...); do
	dir=$($GO list -f '{{.Dir}}' "$pkg")
	targets=$(grep -hoE '^func (Fuzz[A-Za-z0-9_]*)\(' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(/\1/' | sort -u || true)
	for t in $targets; do
		found=1
		echo "==> $pkg $t ($FUZZTIME)"
		if $GO test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
			status=ok
		# A known race in Go's fuzz coordinator (internal/fuzz compares the
		# -fuzztime context's error with its parent's) can fail a target at
		# the deadline with no failing input; a second run that passes shows
		# it was that.
		elif grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log" &&
			cat "$log" && echo "(Go's fuzz coordinator reported its own -fuzztime deadline, no input failed: running $t once more)" &&
			$GO test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
			status=ok
		else
			status=FAIL
			failed=1
			cat "$log"
		fi
		execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -1 | awk '{print $2}')
		tail -n 2 "$log"
		summary+=$(printf '%-36s %-22s %12s %s' "${pkg#github.com/tokend/tokend/}" "$t" "${execs:-?}" "$status")$'\n'
	done
done
if [ "$found" -eq 0 ]; then
	echo "no fuzz targets found"
	exit 1
fi
echo
echo "fuzzing for $FUZZTIME per target:"
printf '%-36s %-22s %12s %s\n' package target executions result
printf '%s' "$summary"
exit "$failed"
