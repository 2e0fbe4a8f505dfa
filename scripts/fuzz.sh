#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME (default 30s) each.
# Their seed corpora already run in every `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}

found=0
for pkg in $($GO list ./...); do
	dir=$($GO list -f '{{.Dir}}' "$pkg")
	targets=$(grep -hoE '^func (Fuzz[A-Za-z0-9_]*)\(' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]*)\(/\1/' | sort -u || true)
	for t in $targets; do
		found=1
		echo "==> $pkg $t ($FUZZTIME)"
		$GO test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" "$pkg"
	done
done
if [ "$found" -eq 0 ]; then
	echo "no fuzz targets found"
fi
