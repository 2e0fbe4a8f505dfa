package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/tokend/tokend/fsm"
)

// Messages of auth/token/tidy (VAULT-API.md §1.9).
const (
	msgTidyStarted = "Tidy operation successfully started. Any information from the operation will be printed to Vault's server logs."
	msgTidyRunning = "Tidy operation already in progress."
)

// tidyRoutes is the route table of auth/token/tidy.
func (s *server) tidyRoutes() []*Route {
	op := &Op{Handler: s.tidy, Kind: Write, Summary: "Check every index against the token records and repair it (root or sudo)"}
	return []*Route{{
		Path: "/v1/auth/token/tidy", Fields: Fields{}, Ops: update(op),
		// Observed on Vault: this endpoint's envelope has an empty mount_type.
		MountType: "",
		Description: "Proposes one Tidy command: every replica repairs its accessor, parent, expiry and path indexes " +
			"against the primary token map and turns tokens whose parent is missing into orphans. 202 with Vault's warning; " +
			"tokend extension: data holds the counts (tokens checked, each kind of repair, up to 1000 repair lines naming " +
			"tokens by accessor), which are also logged. A tidy while another runs on this node: 200 with the warning " +
			"\"Tidy operation already in progress.\"",
	}}
}

// tidy is Vault's handleTidy, run synchronously: the repairs happen inside
// one raft command, so there is nothing to run in the background, and the
// counts can be returned.
func (s *server) tidy(ctx context.Context, r *Request) (*Response, error) {
	// Practically root-only in Vault; tokend asks for root or sudo.
	if !s.sudo(r) {
		return nil, newError(http.StatusForbidden, msgACLDenied)
	}
	if !s.tidyRunning.CompareAndSwap(false, true) {
		return &Response{Warnings: []string{msgTidyRunning}}, nil
	}
	defer s.tidyRunning.Store(false)
	res, err := s.propose(ctx, r, fsm.Tidy{Now: r.Now.UnixNano()})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	rep := res.Tidy
	if rep == nil {
		return nil, errors.New("tidy returned no report")
	}
	s.log.Info("tidy finished", "tokens", rep.Tokens, "repairs", rep.Total(),
		"accessors_dangling", rep.AccessorsDangling, "accessors_mismatched", rep.AccessorsMismatched,
		"accessors_missing", rep.AccessorsMissing, "children_dangling", rep.ChildrenDangling,
		"children_mismatched", rep.ChildrenMismatched, "children_missing", rep.ChildrenMissing,
		"orphaned", rep.Orphaned, "expiry_missing", rep.ExpiryMissing, "expiry_extra", rep.ExpiryExtra,
		"path_missing", rep.PathMissing, "path_extra", rep.PathExtra)
	for _, line := range rep.Repairs {
		// Lines name tokens by accessor or short hash, never by ID.
		s.log.Debug("tidy repair", "repair", line)
	}
	repairs := rep.Repairs
	if repairs == nil {
		repairs = []string{}
	}
	return &Response{
		Status:   http.StatusAccepted,
		Warnings: []string{msgTidyStarted},
		Data: map[string]any{
			"tokens":               rep.Tokens,
			"repairs_total":        rep.Total(),
			"accessors_dangling":   rep.AccessorsDangling,
			"accessors_mismatched": rep.AccessorsMismatched,
			"accessors_missing":    rep.AccessorsMissing,
			"children_dangling":    rep.ChildrenDangling,
			"children_mismatched":  rep.ChildrenMismatched,
			"children_missing":     rep.ChildrenMissing,
			"orphaned":             rep.Orphaned,
			"expiry_missing":       rep.ExpiryMissing,
			"expiry_extra":         rep.ExpiryExtra,
			"path_missing":         rep.PathMissing,
			"path_extra":           rep.PathExtra,
			"repairs":              repairs,
			"repairs_omitted":      rep.RepairsOmitted,
		},
	}, nil
}
