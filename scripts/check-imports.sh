#!/usr/bin/env bash
# Import boundaries of STYLE.md §1, checked on every `make lint`:
#  - fsm and httpapi never depend on hashicorp/raft or memberlist (transitively);
#  - fsm imports no network or randomness and never calls time.Now;
#  - config imports nothing of tokend's own.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
fail=0

deps=$($GO list -deps ./fsm/... ./httpapi/...)
if bad=$(grep -E '^github\.com/hashicorp/(raft|memberlist)($|/|-)' <<<"$deps"); then
	echo "import boundary: fsm/httpapi depend on raft/memberlist:"
	echo "$bad" | sed 's/^/  /'
	for p in $bad; do
		echo "  imported by: $($GO list -f '{{.ImportPath}} {{join .Imports " "}}' ./fsm/... ./httpapi/... | grep -F " $p" | cut -d' ' -f1 | tr '\n' ' ')"
	done
	fail=1
fi

fsm_imports=$($GO list -f '{{join .Imports "\n"}}' ./fsm/... | sort -u)
if bad=$(grep -E '^(net|net/.*|math/rand|math/rand/v2|crypto/rand)$' <<<"$fsm_imports"); then
	echo "import boundary: fsm must not import network or randomness:"
	echo "$bad" | sed 's/^/  /'
	fail=1
fi
if bad=$(grep -rn --include='*.go' --exclude='*_test.go' 'time\.Now()' fsm); then
	echo "fsm must not read the clock (time comes from the command):"
	echo "$bad" | sed 's/^/  /'
	fail=1
fi

config_imports=$($GO list -f '{{join .Imports "\n"}}' ./config/...)
if bad=$(grep -E '^github\.com/tokend/' <<<"$config_imports"); then
	echo "import boundary: config must not import tokend packages:"
	echo "$bad" | sed 's/^/  /'
	fail=1
fi

if [ "$fail" -ne 0 ]; then
	exit 1
fi
echo "import boundaries ok"
