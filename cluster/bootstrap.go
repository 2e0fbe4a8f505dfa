package cluster

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// bootstrapLoop runs on a node that started without raft state. It
// bootstraps raft once BootstrapExpect alive members with valid metadata see
// each other and none of them has raft state; it stops as soon as this node
// has raft state (it bootstrapped, or a leader added it).
func (n *Node) bootstrapLoop() {
	defer n.wg.Done()
	interval := n.timing.GossipInterval * 2
	if interval < 10*time.Millisecond {
		interval = 10 * time.Millisecond
	}
	if interval > 500*time.Millisecond {
		interval = 500 * time.Millisecond
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	logged, probeLogged := false, false
	// Probes (verifiedServers) end when the node shuts down.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.shutdownCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		if n.raft.LastIndex() > 0 {
			// A leader added us (or we bootstrapped): advertise it.
			n.markBootstrapped()
			return
		}
		servers, other := n.bootstrapCandidates()
		if !other && len(servers) >= n.cfg.BootstrapExpect {
			servers = n.verifiedServers(ctx, servers, &probeLogged)
		}
		switch {
		case other:
			// Someone already has raft state: a leader will add us.
			if !logged {
				n.logger.Info("cluster already bootstrapped, waiting to be added")
				logged = true
			}
		case len(servers) >= n.cfg.BootstrapExpect:
			n.logger.Info("bootstrapping cluster", "servers", len(servers))
			err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
			if err != nil && err != raft.ErrCantBootstrap {
				n.logger.Error("bootstrap failed", "error", err)
			} else {
				n.markBootstrapped()
				return
			}
		}
		select {
		case <-n.shutdownCh:
			return
		case <-tick.C:
		}
	}
}

// bootstrapCandidates returns the raft servers of every alive member with
// valid metadata (sorted, so every node builds the same configuration) and
// whether any other member already reports raft state.
func (n *Node) bootstrapCandidates() ([]raft.Server, bool) {
	var servers []raft.Server
	other := false
	for id, m := range n.liveMembers() {
		if m.status != "alive" {
			continue
		}
		if m.meta.Bootstrapped && id != n.id {
			other = true
		}
		servers = append(servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       raft.ServerID(id),
			Address:  raft.ServerAddress(m.meta.RaftAddr),
		})
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	return servers, other
}

// verifiedServers keeps the servers that pass the cluster TLS probe (all of
// them without cluster TLS): a member that holds the gossip key but no
// cluster certificate for its id is never written into the bootstrap
// configuration. Every node probes the same members, so nodes with valid
// certificates still agree on one configuration.
func (n *Node) verifiedServers(ctx context.Context, servers []raft.Server, logged *bool) []raft.Server {
	if n.cfg.TLS == nil {
		return servers
	}
	out := servers[:0:0]
	for _, s := range servers {
		if string(s.ID) != n.id {
			if err := n.probePeer(ctx, string(s.ID), string(s.Address)); err != nil {
				if !*logged {
					n.logger.Warn("not bootstrapping with member: cluster TLS check failed",
						"peer", string(s.ID), "raft_addr", string(s.Address), "error", err)
					*logged = true
				}
				continue
			}
		}
		out = append(out, s)
	}
	return out
}
