package main

import (
	"flag"
	"fmt"

	"github.com/hashicorp/vault/api"
)

// operatorRaftRemovePeer is Vault's "operator raft remove-peer": POST
// sys/storage/raft/remove-peer {"server_id": ID}. The removal is final for
// that data dir: the node answers 503 and is never re-added by gossip;
// wipe its data dir to join it again.
func operatorRaftRemovePeer(e *env, argv []string) int {
	var serverID string
	return clientCmd{
		name: "operator raft remove-peer",
		args: "[-server-id] ID",
		help: "Removes a server from the raft configuration for good (root or sudo), as Vault's \"operator raft " +
			"remove-peer\". The removed node stops serving and is not re-added by gossip, also not after a restart; " +
			"wipe its data dir to let it join again as a new instance.",
		maxArgs: 1,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&serverID, "server-id", "", "node id of the server to remove")
		},
		body: func(e *env, c *api.Client, _ clientFlags, args []string) error {
			if serverID == "" && len(args) == 1 {
				serverID = args[0]
			}
			if serverID == "" {
				return usagef("expected -server-id ID")
			}
			_, err := writeJSON(e, c, "sys/storage/raft/remove-peer", map[string]string{"server_id": serverID})
			if err != nil {
				return fmt.Errorf("remove raft peer %s: %w", serverID, err)
			}
			fmt.Fprintf(e.stdout, "Peer removed successfully!\n")
			return nil
		},
	}.run(e, argv)
}
