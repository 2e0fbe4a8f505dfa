// Command raftceiling measures reference ceiling (b) of issue 5 from a
// script: a raw hashicorp/raft + raft-boltdb/v2 cluster in one process
// applying same-size commands from concurrent proposers (see package
// ceiling).
//
//	go run ./test/ceiling/cmd/raftceiling -proposers 64 -d 10s -format json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/tokend/tokend/test/ceiling"
)

func main() {
	nodes := flag.Int("nodes", 3, "raft nodes in the cluster")
	proposers := flag.Int("proposers", 64, "concurrent proposers (goroutines calling raft.Apply)")
	size := flag.Int("size", ceiling.DefaultEntrySize, "command size in bytes (default: a tokend CreateToken entry)")
	d := flag.Duration("d", 10*time.Second, "measurement duration")
	format := flag.String("format", "text", "output format: text or json")
	flag.Parse()
	if *format != "text" && *format != "json" {
		fmt.Fprintf(os.Stderr, "raftceiling: unknown -format %q (text or json)\n", *format)
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := ceiling.Run(ctx, *nodes, *proposers, *size, *d)
	if err != nil {
		fmt.Fprintln(os.Stderr, "raftceiling:", err)
		os.Exit(1)
	}
	if *format == "json" {
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		out := map[string]any{
			"name":        "raft-ceiling",
			"nodes":       res.Nodes,
			"concurrency": res.Proposers,
			"entry_bytes": res.EntrySize,
			"ops":         res.Applies,
			"errors":      res.Errors,
			"duration_s":  res.Elapsed.Seconds(),
			"ops_per_sec": res.AppliesPerSec,
			"p50_ms":      ms(res.P50),
			"p90_ms":      ms(res.P90),
			"p99_ms":      ms(res.P99),
			"max_ms":      ms(res.Max),
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(os.Stderr, "raftceiling:", err)
			os.Exit(1)
		}
		return
	}
	fmt.Printf("raft ceiling: %d nodes, %d proposers, %d-byte entries, %s\n",
		res.Nodes, res.Proposers, res.EntrySize, res.Elapsed.Round(time.Millisecond))
	fmt.Printf("  %d applies (%d errors), %.0f applies/s\n", res.Applies, res.Errors, res.AppliesPerSec)
	fmt.Printf("  latency p50 %s  p90 %s  p99 %s  max %s\n", res.P50, res.P90, res.P99, res.Max)
}
