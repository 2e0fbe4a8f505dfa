package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/tokend/tokend/fsm"
)

// sysRoutes is the route table of the sys endpoints tokend serves.
func (s *server) sysRoutes() []*Route {
	healthOp := &Op{Handler: s.health, Kind: Read, Summary: "Node health; the status code encodes the node's role"}
	codeField := func(def int, what string) *Field {
		return &Field{Type: Int, Default: int64(def), Description: fmt.Sprintf("Status code to return %s (default %d)", what, def)}
	}
	initShares := func(what string) *Field {
		return &Field{Type: Int, Description: what + " (accepted and ignored: tokend has no seal)"}
	}
	return []*Route{
		{
			Path: "/v1/sys/init", Unauthenticated: true, Bare: true, MountType: "system",
			Fields: Fields{
				"secret_shares":      initShares("Number of key shares"),
				"secret_threshold":   initShares("Key share threshold"),
				"stored_shares":      initShares("Stored shares"),
				"recovery_shares":    initShares("Recovery shares"),
				"recovery_threshold": initShares("Recovery threshold"),
				"pgp_keys":           {Type: StringSlice, Description: "PGP keys (accepted and ignored)"},
				"recovery_pgp_keys":  {Type: StringSlice, Description: "Recovery PGP keys (accepted and ignored)"},
				"root_token_pgp_key": {Type: String, Description: "Root token PGP key (accepted and ignored)"},
			},
			Ops: Ops{
				"GET": {Handler: s.initStatus, Kind: Read, Summary: "Whether the store is initialised"},
				"PUT": {Handler: s.initialize, Kind: Write, Summary: "Initialise the store; returns the root token once"},
				"POST": {Handler: s.initialize, Kind: Write,
					Summary: "Initialise the store; returns the root token once"},
			},
			Description: "PUT/POST answers {\"keys\":[],\"keys_base64\":[],\"root_token\":\"…\"} once, then 400 Vault is already initialized.",
		},
		{
			Path: "/v1/sys/health", Unauthenticated: true, Bare: true, MountType: "system",
			Fields: Fields{
				"standbyok":       {Type: Bool, Description: "Answer activecode on a standby (follower)"},
				"perfstandbyok":   {Type: Bool, Description: "Answer activecode on a performance standby (never one here)"},
				"activecode":      codeField(http.StatusOK, "on the leader"),
				"standbycode":     codeField(http.StatusTooManyRequests, "on a follower"),
				"perfstandbycode": codeField(473, "on a performance standby"),
				"drsecondarycode": codeField(472, "on a DR secondary"),
				"haunhealthycode": codeField(http.StatusServiceUnavailable, "when no leader is known or the node is stale"),
				"removedcode":     codeField(530, "when removed from the cluster"),
				"sealedcode":      codeField(http.StatusServiceUnavailable, "when sealed (never)"),
				"uninitcode":      codeField(http.StatusNotImplemented, "when not initialised"),
			},
			Ops:         Ops{"GET": healthOp, "HEAD": healthOp},
			Description: "Leader 200, follower 429 (200 with standbyok), uninitialised 501, no leader or stale 503.",
		},
		{
			Path: "/v1/sys/leader", Unauthenticated: true, Bare: true, MountType: "system", Fields: Fields{},
			Ops: Ops{"GET": {Handler: s.leader, Kind: Read, Summary: "The current leader as this node knows it"}},
		},
		{
			Path: "/v1/sys/seal-status", Unauthenticated: true, Bare: true, MountType: "system", Fields: Fields{},
			Ops: Ops{"GET": {Handler: s.sealStatus, Kind: Read, Summary: "Seal status (tokend is never sealed)"}},
		},
		{
			Path: "/v1/sys/storage/raft/configuration", MountType: "system", Fields: Fields{},
			Ops: Ops{"GET": {Handler: s.raftConfiguration, Kind: Read, Summary: "The raft configuration (root only)"}},
		},
		{
			Path: "/v1/sys/members", MountType: "system", Fields: Fields{},
			Ops: Ops{"GET": {Handler: s.members, Kind: Read, Summary: "The gossip view of the cluster (root only)"}},
		},
	}
}

func (s *server) initStatus(_ context.Context, r *Request) (*Response, error) {
	return &Response{Raw: map[string]bool{"initialized": s.node.State().Initialized()}}, nil
}

// initResponse is Vault's InitResponse, keys in Vault's order.
type initResponse struct {
	Keys       []string `json:"keys"`
	KeysBase64 []string `json:"keys_base64"`
	RootToken  string   `json:"root_token"`
}

func (s *server) initialize(ctx context.Context, r *Request) (*Response, error) {
	if s.node.State().Initialized() {
		return nil, badRequest(msgAlreadyInit)
	}
	root, err := InitRoot(ctx, s.node, "")
	if err != nil {
		if errors.Is(err, fsm.ErrAlreadyInitialized) {
			return nil, badRequest(msgAlreadyInit)
		}
		return nil, err
	}
	r.index = max(r.index, s.node.AppliedIndex())
	return &Response{Raw: &initResponse{Keys: []string{}, KeysBase64: []string{}, RootToken: root}}, nil
}

// healthResponse is Vault's HealthResponse, keys in Vault's order.
type healthResponse struct {
	Initialized                   bool   `json:"initialized"`
	Sealed                        bool   `json:"sealed"`
	Standby                       bool   `json:"standby"`
	PerformanceStandby            bool   `json:"performance_standby"`
	ReplicationPerformanceMode    string `json:"replication_performance_mode"`
	ReplicationDRMode             string `json:"replication_dr_mode"`
	ServerTimeUTC                 int64  `json:"server_time_utc"`
	Version                       string `json:"version"`
	Enterprise                    bool   `json:"enterprise"`
	ClusterName                   string `json:"cluster_name,omitempty"`
	ClusterID                     string `json:"cluster_id,omitempty"`
	EchoDurationMS                int64  `json:"echo_duration_ms"`
	ClockSkewMS                   int64  `json:"clock_skew_ms"`
	ReplicationPrimaryCanaryAgeMS int64  `json:"replication_primary_canary_age_ms"`
	HAConnectionHealthy           *bool  `json:"ha_connection_healthy,omitempty"`
	LastRequestForwardingHBMS     int64  `json:"last_request_forwarding_heartbeat_ms,omitempty"`
}

func (s *server) health(_ context.Context, r *Request) (*Response, error) {
	d := r.Data
	h := s.node.Health()
	st := s.node.State()
	clusterID, _ := st.ClusterIdent()
	body := &healthResponse{
		Initialized:                st.Initialized(),
		Standby:                    !h.IsLeader,
		ReplicationPerformanceMode: "disabled",
		ReplicationDRMode:          "disabled",
		ServerTimeUTC:              r.Now.UTC().Unix(),
		Version:                    s.opts.Version,
		ClusterName:                s.opts.ClusterName,
		ClusterID:                  clusterID,
	}
	healthy := h.IsLeader || (h.KnownLeader && !h.Stale)
	if !h.IsLeader {
		body.HAConnectionHealthy = &healthy
		body.LastRequestForwardingHBMS = h.LastContact.Milliseconds()
	}
	code := func(name string) int {
		c := d.Int(name)
		if c < 100 || c > 999 {
			return 0
		}
		return int(c)
	}
	for _, name := range []string{"activecode", "standbycode", "perfstandbycode", "drsecondarycode",
		"haunhealthycode", "removedcode", "sealedcode", "uninitcode"} {
		if d.Has(name) && code(name) == 0 {
			return nil, badRequest(fmt.Sprintf("unable to parse %s: %q is not a valid status code", name, strconv.FormatInt(d.Int(name), 10)))
		}
	}
	var status int
	switch {
	case !body.Initialized:
		status = code("uninitcode")
	case !healthy:
		status = code("haunhealthycode")
	case !h.IsLeader && !d.Bool("standbyok"):
		status = code("standbycode")
	default:
		status = code("activecode")
	}
	return &Response{Raw: body, Status: status}, nil
}

// leaderResponse is Vault's LeaderResponse, keys in Vault's order.
type leaderResponse struct {
	HAEnabled                 bool   `json:"ha_enabled"`
	IsSelf                    bool   `json:"is_self"`
	ActiveTime                string `json:"active_time"`
	LeaderAddress             string `json:"leader_address"`
	LeaderClusterAddress      string `json:"leader_cluster_address"`
	PerformanceStandby        bool   `json:"performance_standby"`
	PerformanceStandbyLastWAL uint64 `json:"performance_standby_last_remote_wal"`
	RaftAppliedIndex          uint64 `json:"raft_applied_index,omitempty"`
}

func (s *server) leader(_ context.Context, r *Request) (*Response, error) {
	h := s.node.Health()
	body := &leaderResponse{
		HAEnabled:        true,
		IsSelf:           h.IsLeader,
		ActiveTime:       time.Time{}.Format(time.RFC3339),
		RaftAppliedIndex: s.node.AppliedIndex(),
	}
	if h.IsLeader && !h.ActiveTime.IsZero() {
		body.ActiveTime = h.ActiveTime.UTC().Format(time.RFC3339Nano)
	}
	if h.KnownLeader || h.IsLeader {
		if h.LeaderHTTPAddr != "" {
			body.LeaderAddress = "http://" + h.LeaderHTTPAddr
		}
		body.LeaderClusterAddress = h.LeaderRaftAddr
	}
	return &Response{Raw: body}, nil
}

// sealStatusResponse is Vault's SealStatusResponse, keys in Vault's order.
type sealStatusResponse struct {
	Type         string `json:"type"`
	Initialized  bool   `json:"initialized"`
	Sealed       bool   `json:"sealed"`
	T            int    `json:"t"`
	N            int    `json:"n"`
	Progress     int    `json:"progress"`
	Nonce        string `json:"nonce"`
	Version      string `json:"version"`
	BuildDate    string `json:"build_date"`
	Migration    bool   `json:"migration"`
	ClusterName  string `json:"cluster_name,omitempty"`
	ClusterID    string `json:"cluster_id,omitempty"`
	RecoverySeal bool   `json:"recovery_seal"`
	StorageType  string `json:"storage_type,omitempty"`
}

func (s *server) sealStatus(_ context.Context, r *Request) (*Response, error) {
	st := s.node.State()
	id, _ := st.ClusterIdent()
	body := &sealStatusResponse{
		Type:        "shamir",
		Initialized: st.Initialized(),
		Version:     s.opts.Version,
		ClusterName: s.opts.ClusterName,
		ClusterID:   id,
		StorageType: "raft",
	}
	if body.Initialized {
		body.T, body.N = 1, 1
	}
	return &Response{Raw: body}, nil
}

func (s *server) raftConfiguration(_ context.Context, r *Request) (*Response, error) {
	servers, err := s.node.RaftServers()
	if err != nil {
		return nil, unavailable("cannot read the raft configuration: " + err.Error())
	}
	list := make([]map[string]any, 0, len(servers))
	for _, sv := range servers {
		list = append(list, map[string]any{
			"node_id":          sv.NodeID,
			"address":          sv.Address,
			"leader":           sv.Leader,
			"voter":            sv.Voter,
			"protocol_version": "3",
		})
	}
	return &Response{Data: map[string]any{
		"config": map[string]any{"servers": list, "index": s.node.AppliedIndex()},
	}}, nil
}

func (s *server) members(_ context.Context, r *Request) (*Response, error) {
	ms := s.node.Members()
	if ms == nil {
		return &Response{Data: map[string]any{"members": []any{}}}, nil
	}
	return &Response{Data: map[string]any{"members": ms}}, nil
}
