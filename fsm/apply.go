package fsm

import "fmt"

// checkNewToken validates a token that CreateToken or InitRoot would store:
// well-formed keys, a stored type, sane counters, and unique hash/accessor.
func (s *state) checkNewToken(op string, t *Token) error {
	if err := checkTokenFields(op, t); err != nil {
		return err
	}
	if _, ok := s.lookup(t.Hash); ok {
		return fmt.Errorf("%s %s: %w", op, shortHash(t.Hash), ErrTokenExists)
	}
	if _, ok := s.accessors.get(t.Accessor); ok {
		return fmt.Errorf("%s %s: %w", op, t.Accessor, ErrAccessorExists)
	}
	return nil
}

// checkTokenFields is checkNewToken without the uniqueness checks (Restore
// detects duplicates as it inserts).
func checkTokenFields(op string, t *Token) error {
	switch {
	case !validHash(t.Hash):
		return fmt.Errorf("%s: hash is not a token hash: %w", op, ErrInvalidCommand)
	case t.Accessor == "":
		return fmt.Errorf("%s: missing accessor: %w", op, ErrInvalidCommand)
	case t.Type != "" && t.Type != TokenTypeService:
		return fmt.Errorf("%s: token type %q is not stored: %w", op, t.Type, ErrInvalidCommand)
	case t.NumUses < 0:
		return fmt.Errorf("%s: negative num_uses: %w", op, ErrInvalidCommand)
	case t.Parent == t.Hash:
		return fmt.Errorf("%s: token is its own parent: %w", op, ErrInvalidCommand)
	}
	return nil
}

func applyCreateToken(s *state, c CreateToken) Result {
	t := c.Token.clone()
	if err := s.checkNewToken("create token", &t); err != nil {
		return Result{Err: err}
	}
	if t.Role != "" {
		if _, ok := s.roles[t.Role]; !ok {
			return Result{Err: fmt.Errorf("create token %s: role %q: %w", t.Accessor, t.Role, ErrRoleNotFound)}
		}
	}
	if t.Parent != "" {
		p, ok := s.lookup(t.Parent)
		if !ok {
			return Result{Err: fmt.Errorf("create token %s: %w", t.Accessor, ErrParentNotFound)}
		}
		// Determinism: validity is judged at the proposer's stamped Now.
		if !s.validAt(p, c.Now) {
			return Result{Err: fmt.Errorf("create token %s: parent expired or exhausted: %w", t.Accessor, ErrParentNotFound)}
		}
	}
	s.insert(&t)
	out := t.clone()
	return Result{Token: &out}
}

func applyInitRoot(s *state, c InitRoot) Result {
	if s.initialized {
		return Result{Err: ErrAlreadyInitialized}
	}
	t := c.Token.clone()
	if t.Parent != "" {
		return Result{Err: fmt.Errorf("init root: root token has a parent: %w", ErrInvalidCommand)}
	}
	if err := s.checkNewToken("init root", &t); err != nil {
		return Result{Err: err}
	}
	s.initialized = true
	s.insert(&t)
	if c.DefaultPolicyText != "" {
		// Seeding never clobbers a default policy that is already stored.
		if _, ok := s.policies[PolicyDefault]; !ok {
			s.setPolicy(PolicyDefault, c.DefaultPolicyText, c.Now)
		}
	}
	out := t.clone()
	return Result{Token: &out}
}

// renewMaxTTL is the system max used when RenewToken carries none.
func renewMaxTTL(c RenewToken) int64 {
	if c.MaxTTL > 0 {
		return c.MaxTTL
	}
	return DefaultMaxTTL
}

func applyRenewToken(s *state, c RenewToken) Result {
	var r *rec
	ok := false
	if c.Hash != "" {
		r, ok = s.lookup(c.Hash)
	} else if k, found := s.accessors.get(c.Accessor); found && c.Accessor != "" {
		r, ok = s.recs.get(k)
	}
	if !ok {
		return Result{Err: fmt.Errorf("renew: %w", ErrTokenNotFound)}
	}
	stored := s.recs.token(r)
	old := &stored
	// A token whose ancestor has expired (or that is exhausted) is as good
	// as revoked: the reaper just has not removed it yet.
	if old.NumUses < 0 || !s.ancestorsValidAt(r, c.Now) {
		return Result{Err: fmt.Errorf("renew %s: %w", old.Accessor, ErrTokenNotFound)}
	}
	switch {
	case old.ExpireTime == 0:
		// A non-expiring (TTL 0) token has no lease to renew.
		return Result{Err: fmt.Errorf("renew %s: %w", old.Accessor, ErrInvalidLease)}
	case old.ExpiredAt(c.Now):
		return Result{Err: fmt.Errorf("renew %s: %w", old.Accessor, ErrLeaseExpired)}
	case !old.Renewable:
		return Result{Err: fmt.Errorf("renew %s: %w", old.Accessor, ErrNotRenewable)}
	}
	issue := old.IssueTime
	if issue == 0 {
		issue = old.CreationTime
	}
	period, emax := old.Period, old.ExplicitMaxTTL
	if c.ByRole && old.Role != "" {
		// The role's current values, read from the state at apply time.
		role, ok := s.roles[old.Role]
		if !ok {
			return Result{Err: fmt.Errorf("renew %s: role %q: %w", old.Accessor, old.Role, ErrRoleNotFound)}
		}
		period, emax = role.TokenPeriod, role.TokenExplicitMaxTTL
	}
	ttl, warnings, err := CalculateTTL(c.Increment, old.TTL, period, 0, emax, renewMaxTTL(c), issue, c.Now)
	if err != nil {
		return Result{Err: fmt.Errorf("renew %s: %w", old.Accessor, err)}
	}
	t := *old // shallow copy is fine: put copies what it keeps
	t.TTL = ttl
	t.ExpireTime = addSeconds(c.Now, ttl) // saturating: MaxTTL comes from the command
	t.LastRenewalTime = c.Now
	s.replace(old, &t)
	out := t.clone()
	return Result{Token: &out, Warnings: warnings}
}

func applyRevokeTree(f *FSM, c RevokeTree) Result {
	return Result{Revoked: f.revokeHash(c.Hash)}
}

func applyRevokeOrphan(f *FSM, c RevokeOrphan) Result {
	s := f.st // read without mu: Apply is the only writer
	k, ok := keyOf(c.Hash)
	if !ok || !s.recs.has(k) {
		return Result{Err: fmt.Errorf("revoke orphan: %w", ErrTokenNotFound)}
	}
	kids := s.sortedChildren(k)
	// reparent cuts each listed child's parent link. A child listed but
	// not stored (only a corrupt index has one, see Tidy) is skipped.
	reparent := func(s *state, kids []key) {
		for _, ch := range kids {
			s.recs.setParent(ch, nil)
		}
	}
	if len(kids) <= f.chunk {
		f.section(func(s *state) {
			reparent(s, kids)
			s.remove(k)
		})
		return Result{Revoked: 1}
	}
	// Many children: the token goes first, in one section that also
	// publishes the children as orphans, then their records are replaced
	// in chunks. Removing the token before reparenting leaves the same
	// state as the other order (remove drops the children set either way).
	orphans := make(map[key]struct{}, len(kids))
	for _, ch := range kids {
		orphans[ch] = struct{}{}
	}
	f.section(func(s *state) {
		f.pend = &pending{orphans: orphans}
		s.remove(k)
	})
	for i := 0; i < len(kids); i += f.chunk {
		part := kids[i:min(i+f.chunk, len(kids))]
		f.section(func(s *state) { reparent(s, part) })
	}
	return Result{Revoked: 1}
}

func applyRevokeAccessor(f *FSM, c RevokeAccessor) Result {
	k, ok := f.st.accessors.get(c.Accessor)
	if !ok || c.Accessor == "" {
		return Result{Err: fmt.Errorf("revoke accessor %s: %w", c.Accessor, ErrTokenNotFound)}
	}
	return Result{Revoked: f.revoke([]key{k})}
}

func applyUseToken(f *FSM, c UseToken) Result {
	s := f.st // read without mu: Apply is the only writer
	r, ok := s.lookup(c.Hash)
	if !ok || !s.validAt(r, c.Now) {
		return Result{Err: fmt.Errorf("use token: %w", ErrTokenNotFound)}
	}
	old := s.recs.token(r)
	switch {
	case old.NumUses == 0:
		out := old.clone()
		return Result{Token: &out}
	case old.NumUses > 1:
		t := old
		t.NumUses--
		f.section(func(s *state) { s.recs.put(&t) })
		out := t.clone()
		return Result{Token: &out}
	default:
		// Last use: the caller's request still succeeds with num_uses -1,
		// and the tree goes away in this same command.
		out := old.clone()
		out.NumUses = -1
		return Result{Token: &out, Revoked: f.revoke([]key{r.hash})}
	}
}

func applyReapExpired(f *FSM, c ReapExpired) Result {
	var due []key
	f.st.expiry.Ascend(func(it expiryItem) bool {
		if it.at > c.Now || (c.Limit > 0 && len(due) >= c.Limit) {
			return false
		}
		due = append(due, it.hash)
		return true
	})
	return Result{Revoked: f.revoke(due)}
}

func applySetClusterIdent(s *state, c SetClusterIdent) Result {
	if c.ClusterID == "" {
		return Result{Err: fmt.Errorf("set cluster ident: empty cluster id: %w", ErrInvalidCommand)}
	}
	if s.clusterID != "" {
		return Result{} // first one wins
	}
	s.clusterID = c.ClusterID
	s.indexKey = append([]byte(nil), c.IndexKey...)
	return Result{}
}
