# tokend — every target is a thin wrapper you could type by hand (STYLE.md §10).

GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
BIN       := bin/tokend
# Unit + in-process cluster tests under the race detector.
TEST_TIMEOUT ?= 15m
FUZZTIME  ?= 30s
# Every fuzz target also runs briefly in make test.
FUZZTIME_TEST ?= 3s
# make chaos: total fault-schedule time (split over the cluster sizes) and sizes.
CHAOS_DURATION ?= 10m
CHAOS_NODES    ?= 3,5
CHAOS_ARGS     ?=

.PHONY: all build run cluster cluster-stop test test-e2e chaos chaos-short lint imports tidy tidy-check bench bench-cluster bench-scale fuzz docs clean

all: build

## build: compile bin/tokend with the version stamped in
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/tokend

## run: one dev node on 127.0.0.1:8200; prints its root token ("root")
run: build
	$(BIN) server -dev -dev-root-token-id=root

## cluster: three local nodes in the background (logs and data in tmp/cluster), prints the root token
cluster: build
	./scripts/cluster.sh start

## cluster-stop: stop the nodes started by make cluster (data is kept; rm -rf tmp/cluster to reset)
cluster-stop:
	./scripts/cluster.sh stop

## test: lint, then every test under the race detector, then every fuzz target for FUZZTIME_TEST (3s) — the one command CI runs
## The packages that run whole clusters (cluster/, test/) go one at a time:
## two race-instrumented clusters on 2 cores starve raft's timers.
UNIT_PKGS := ./fsm/... ./httpapi/... ./config/... ./cmd/...
CLUSTER_PKGS := ./cluster/... ./test/...
test: lint tidy-check
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(UNIT_PKGS)
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) -p 1 $(CLUSTER_PKGS)
	FUZZTIME=$(FUZZTIME_TEST) ./scripts/fuzz.sh
	$(MAKE) --no-print-directory chaos-short

## test-e2e: the real-process tests with the full leader-kill measurement (10 kills)
test-e2e: build
	TOKEND_FAILOVER_TRIES=10 $(GO) test -count=1 -timeout 30m -v -run 'TestProcess|TestCLI' ./test/

## chaos: the real-process chaos harness (test/chaos) on 3 and 5 nodes, every nemesis, CHAOS_DURATION (10m) in all,
## then the T2/T5/T6/T8/T10/T11 scenarios at their RELIABILITY.md length and the 90 s flaky-links run (T7);
## artifacts (histories, schedule, logs, report) are kept when it fails, or always with CHAOS_ARGS=-chaos.artifacts=DIR
chaos:
	./scripts/ensure-chaos-deps.sh
	$(GO) test -tags chaos -count=1 -timeout 90m -v -run TestChaos ./test/chaos/ \
		-args -chaos.duration=$(CHAOS_DURATION) -chaos.nodes=$(CHAOS_NODES) $(CHAOS_ARGS)

## chaos-short: one round of every nemesis on 3 nodes (about 2 minutes), then the T2/T5/T11 and T6/T8/T10 scenarios
## shortened (about 2 minutes) and a 36 s flaky-links run (T7); part of make test
# T6 membership (one round), T8 clock skew (±3 s) and T10 storm (12 s), shortened: about 70 s together.
CHAOS_SHORT_T6_T8_T10 = -chaos.t6-duration=1s -chaos.t8-duration=20s -chaos.t8-skew=3s -chaos.t10-duration=12s
chaos-short:
	./scripts/ensure-chaos-deps.sh
	$(GO) test -tags chaos -count=1 -timeout 15m -v -run TestChaos ./test/chaos/ \
		-args -chaos.duration=80s -chaos.nodes=3 -chaos.hold-min=2s -chaos.hold-max=4s -chaos.flaky-duration=36s \
		$(CHAOS_SHORT_T6_T8_T10) $(CHAOS_ARGS)

## lint: gofmt, go vet, staticcheck and the import-boundary check
lint:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt -l reports unformatted files:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags chaos ./test/chaos/
	$(GO) tool staticcheck ./...
	./scripts/check-imports.sh

## imports: only the import-boundary check
imports:
	./scripts/check-imports.sh

## tidy: go mod tidy, then fail if go.mod/go.sum changed (commit the result)
tidy:
	$(GO) mod tidy
	git diff --exit-code -- go.mod go.sum

## tidy-check: fail if go.mod/go.sum are not tidy, without changing them
tidy-check:
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run make tidy"; $(GO) mod tidy -diff; exit 1; }

## bench: the benchmarks of fsm and httpapi, the over-HTTP cluster benchmarks of test/ and the raw-raft ceiling (test/ceiling)
## (follower lookup-self vs a bare handler with the same body, creates through 3 nodes; 64 clients)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./fsm/... ./httpapi/... ./test/ ./test/ceiling/

## bench-cluster: a private 3-node cluster on free loopback ports, every tokend bench profile plus both
## ceilings in one run, one table of ratios against issue 5's targets (BENCH_FLAGS="-d 10s -keep" etc.)
BENCH_FLAGS ?=
bench-cluster: build
	$(GO) build -o bin/benchcluster ./scripts/benchcluster
	bin/benchcluster -bin $(BIN) $(BENCH_FLAGS)

## bench-scale: one node seeded to 10k, 100k and 1M tokens: restart time, lookup-self/s and creates/s at each size
bench-scale:
	$(GO) test -run '^$$' -bench BenchmarkScale -benchtime 1x -timeout 60m ./test/scale/

## fuzz: every fuzz target for FUZZTIME (30s) each
fuzz:
	FUZZTIME=$(FUZZTIME) ./scripts/fuzz.sh

## docs: regenerate docs/api.md from the route tables
docs:
	$(GO) run ./httpapi/cmd/gendocs -o docs/api.md

clean:
	rm -rf bin tmp
