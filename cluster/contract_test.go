package cluster

import (
	"context"
	"net/http"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

// nodeContract mirrors httpapi.Node (cluster must not import httpapi); cmd
// and test/inproc check the real interface when they hand a *Node to
// httpapi.New.
type nodeContract interface {
	Propose(ctx context.Context, c fsm.Command) (fsm.Result, uint64, error)
	State() fsm.Reader
	AppliedIndex() uint64
	AwaitIndex(ctx context.Context, index uint64) error
	VerifyLeader(ctx context.Context) error
	ForwardToLeader(w http.ResponseWriter, r *http.Request) (forwarded bool, err error)
	Health() status.Health
	Members() []status.Member
	RaftServers() ([]status.RaftServer, error)
	ServeInternal(w http.ResponseWriter, r *http.Request)
	TokenHasher() *fsm.Hasher
	GossipKeyring() status.GossipKeyring
}

var _ nodeContract = (*Node)(nil)
