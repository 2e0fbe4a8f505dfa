package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// abArgs returns the tokend bench arguments of a profile on cluster c, as
// measure runs it.
func abArgs(o opts, c *cluster, profile string) ([]string, error) {
	prep := strconv.Itoa(o.prepare)
	all := c.leader + "," + strings.Join(c.others(c.leader), ",")
	switch profile {
	case "create":
		return []string{"-profile", "create", "-addr", all}, nil
	case "lookup-self", "lookup":
		return []string{"-profile", profile, "-addr", c.follower, "-prepare", prep}, nil
	case "renew-self", "revoke", "mixed":
		return []string{"-profile", profile, "-addr", all, "-prepare", prep}, nil
	case "child-cascade":
		return []string{"-profile", "child-cascade", "-children", strconv.Itoa(o.children), "-addr", all}, nil
	}
	return nil, fmt.Errorf("-ab: unknown profile %q", profile)
}

// measureAB runs each -ab profile on the first cluster and then on every
// compared one, -ab-rounds times, so that each pair of rows saw about the
// same machine load: the CPU per op columns are the A/B figure.
func measureAB(ctx context.Context, o opts, c *cluster, cbs []*cluster) ([]row, error) {
	all := append([]*cluster{c}, cbs...)
	var rows []row
	for round := range o.abRounds {
		for _, profile := range strings.Split(o.abProfiles, ",") {
			for i, cl := range all {
				args, err := abArgs(o, cl, profile)
				if err != nil {
					return nil, err
				}
				name := "A"
				if i > 0 {
					name = "B" + strconv.Itoa(i)
				}
				name += ": " + profile + " #" + strconv.Itoa(round+1)
				logf("%s", name)
				var wg sync.WaitGroup
				if i == 0 && o.profileDir != "" {
					wg.Go(func() { cl.profileNodes(ctx, o, fmt.Sprintf("%s-%d", profile, round+1)) })
				}
				rate := o.abWriteRate
				if profile == "lookup-self" || profile == "lookup" {
					rate = o.abReadRate
				}
				if rate > 0 {
					args = append(args, "-rate", strconv.Itoa(rate))
				}
				res, err := cl.bench(ctx, sanitize(name), append(args, "-d", o.dur.String(), "-c", strconv.Itoa(o.conc))...)
				wg.Wait()
				if err != nil {
					return nil, err
				}
				r := row{Name: name, Res: res}
				if round == 0 && i > 0 {
					r.Note = "cluster " + name[:2] + " runs " + cl.bin + " " + strings.Join(cl.env, " ")
				}
				rows = append(rows, r)
			}
		}
	}
	return rows, nil
}

// profileNodes writes a CPU profile of every node, covering the middle of
// a run of o.dur, to o.profileDir/<tag>-<node>.pprof.
func (c *cluster) profileNodes(ctx context.Context, o opts, tag string) {
	secs := max(int(o.dur/time.Second)-2, 1)
	select {
	case <-time.After(time.Second): // skip the bench's preparation
	case <-ctx.Done():
		return
	}
	var wg sync.WaitGroup
	for i, a := range c.addrs {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, "GET", a+"/v1/sys/pprof/profile?seconds="+strconv.Itoa(secs), nil)
			if err != nil {
				return
			}
			req.Header.Set("X-Vault-Token", c.root)
			cl := http.Client{Timeout: time.Duration(secs+10) * time.Second}
			resp, err := cl.Do(req)
			if err != nil {
				logf("profile %s: %v", a, err)
				return
			}
			defer resp.Body.Close()
			role := "follower"
			if a == c.leader {
				role = "leader"
			}
			f, err := os.Create(filepath.Join(o.profileDir, fmt.Sprintf("%s-%s%d.pprof", tag, role, i+1)))
			if err != nil {
				logf("profile: %v", err)
				return
			}
			defer f.Close()
			_, _ = f.ReadFrom(resp.Body)
		})
	}
	wg.Wait()
}
