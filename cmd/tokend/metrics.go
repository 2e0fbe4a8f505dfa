package main

import (
	"fmt"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	gmprometheus "github.com/hashicorp/go-metrics/compat/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// goMetricsExpiry is how long a series raft or memberlist stopped emitting
// (a removed peer's replication timings) stays in the exposition.
const goMetricsExpiry = time.Minute

// newMetricsRegistry returns the registry GET /v1/sys/metrics serves: the
// Go runtime and process collectors, and raft's and memberlist's own
// go-metrics telemetry bridged in as tokend_raft_* / tokend_memberlist_*
// (go-metrics has one process-wide sink, which is why this lives in main:
// one node per process). The node's and the HTTP API's collectors are
// added by the caller once they exist. stop detaches the go-metrics sink.
func newMetricsRegistry() (reg *prometheus.Registry, stop func(), err error) {
	reg = prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	sink, err := gmprometheus.NewPrometheusSinkFrom(gmprometheus.PrometheusOpts{
		Registerer: reg,
		Expiration: goMetricsExpiry,
		Name:       "tokend_gometrics_bridge",
	})
	if err != nil {
		return nil, nil, fmt.Errorf("metrics: bridge go-metrics: %w", err)
	}
	cfg := gometrics.DefaultConfig("tokend")
	cfg.EnableHostname = false       // the scraper labels the instance
	cfg.EnableRuntimeMetrics = false // the Go collector above reports the runtime
	if _, err := gometrics.NewGlobal(cfg, sink); err != nil {
		return nil, nil, fmt.Errorf("metrics: install go-metrics sink: %w", err)
	}
	stop = func() {
		// Back to go-metrics' default: drop everything raft emits from now on.
		_, _ = gometrics.NewGlobal(cfg, &gometrics.BlackholeSink{})
	}
	return reg, stop, nil
}
