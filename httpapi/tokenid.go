package httpapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi/acl"
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomBase62 returns n characters drawn uniformly from base62 with
// crypto/rand (rejection sampling, no modulo bias): 24 chars ≈ 142 bits.
func randomBase62(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+8)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", fmt.Errorf("read random: %w", err)
		}
		for _, b := range buf {
			// 248 = 4*62: keep bytes below it so every char is equally likely.
			if b < 248 {
				out = append(out, base62[b%62])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out), nil
}

// newTokenID returns a fresh service token ID: "hvs." + 24 base62 chars.
func newTokenID() (string, error) {
	s, err := randomBase62(24)
	if err != nil {
		return "", err
	}
	return "hvs." + s, nil
}

// newAccessor returns a fresh accessor: 24 base62 chars.
func newAccessor() (string, error) { return randomBase62(24) }

// ensureClusterIdent proposes the cluster's identity (ID and X-Vault-Index
// HMAC key) if it is not yet set. SetClusterIdent is idempotent: a second
// one is ignored by the state machine, so racing proposers are harmless.
func ensureClusterIdent(ctx context.Context, node Node) error {
	if id, _ := node.State().ClusterIdent(); id != "" {
		return nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("read random: %w", err)
	}
	res, _, err := node.Propose(ctx, fsm.SetClusterIdent{ClusterID: newUUID(), IndexKey: key})
	if err != nil {
		return err
	}
	return res.Err
}

// InitRoot initialises the store: it records the cluster identity if
// missing and proposes the initial root token (a non-expiring orphan with
// the root policy, path auth/token/root, display name root). rootID is the
// token ID to use; empty generates one. It returns the plaintext root token
// (the only place it exists) or fsm.ErrAlreadyInitialized. It must run on
// the leader.
func InitRoot(ctx context.Context, node Node, rootID string) (string, error) {
	if err := ensureClusterIdent(ctx, node); err != nil {
		return "", fmt.Errorf("set cluster identity: %w", err)
	}
	if node.State().Initialized() {
		return "", fsm.ErrAlreadyInitialized
	}
	if rootID == "" {
		id, err := newTokenID()
		if err != nil {
			return "", err
		}
		rootID = id
	}
	acc, err := newAccessor()
	if err != nil {
		return "", err
	}
	now := time.Now().UnixNano()
	tok := fsm.Token{
		Hash:         node.TokenHasher().Hash(rootID),
		Accessor:     acc,
		Policies:     []string{"root"},
		DisplayName:  "root",
		Path:         "auth/token/root",
		CreationTime: now,
		IssueTime:    now,
		Type:         fsm.TokenTypeService,
	}
	// The stock "default" policy is stored with the root token, atomically
	// (VAULT-API.md §2.5): sys/init and -dev both come through here.
	res, _, err := node.Propose(ctx, fsm.InitRoot{Token: tok, Now: now, DefaultPolicyText: acl.DefaultPolicyText})
	if err != nil {
		return "", err
	}
	if res.Err != nil {
		if errors.Is(res.Err, fsm.ErrAlreadyInitialized) {
			return "", fsm.ErrAlreadyInitialized
		}
		return "", res.Err
	}
	return rootID, nil
}
