package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

// keyringWait bounds how long a keyring change waits for the live members
// to report it (Consul's keyring operations also answer once every member
// has); the change is committed either way. A variable for tests.
var keyringWait = 10 * time.Second

// keyringPoll is how often that wait looks at the members' metadata.
const keyringPoll = 50 * time.Millisecond

// keyringRoutes is the route table of the gossip keyring
// (`tokend operator keyring`). Every operation is root or sudo only: the
// list shows the keys themselves.
func (s *server) keyringRoutes() []*Route {
	keyField := Fields{"key": {Type: String, Required: true, Sensitive: true, MaxLen: 256,
		Missing:     "missing key",
		Description: "The gossip key: base64 (standard encoding) of 16, 24 or 32 bytes"}}
	const shape = "data = {\"keys\": [{\"key\": <base64>, \"primary\": <bool>, \"members\": <live members holding it>, " +
		"\"primary_members\": <live members encrypting with it>}], \"num_members\": <live members>, \"version\": <changes committed>}."
	return []*Route{
		{
			Path: "/v1/sys/keyring/gossip", MountType: "system", Fields: Fields{},
			Ops: Ops{"GET": {Handler: s.keyringList, Kind: Read,
				Summary: "The gossip encryption keyring and how many live members hold each key (root or sudo)"}},
			Description: shape,
		},
		{
			Path: "/v1/sys/keyring/gossip/install", MountType: "system", Fields: keyField,
			Ops: update(&Op{Handler: s.keyringInstall, Kind: Write,
				Summary: "Install a gossip key on every member, as a secondary key (root or sudo)"}),
			Description: "Committed through raft, so members that are down get it when they come back. Answers once every " +
				"live member holds the key (at most 10 s; a warning says if some did not yet). " + shape,
		},
		{
			Path: "/v1/sys/keyring/gossip/use", MountType: "system", Fields: keyField,
			Ops: update(&Op{Handler: s.keyringUse, Kind: Write,
				Summary: "Make an installed gossip key the primary (encrypting) key on every member (root or sudo)"}),
			Description: "400 unless every live member already holds the key. " + shape,
		},
		{
			Path: "/v1/sys/keyring/gossip/remove", MountType: "system", Fields: keyField,
			Ops: update(&Op{Handler: s.keyringRemove, Kind: Write,
				Summary: "Remove a non-primary gossip key from every member (root or sudo)"}),
			Description: "400 for the primary key, or while a live member still encrypts with the key. " + shape,
		},
	}
}

// keyringList answers the keyring as this node sees it.
func (s *server) keyringList(_ context.Context, r *Request) (*Response, error) {
	if !s.sudo(r) {
		return nil, newError(http.StatusForbidden, msgACLDenied)
	}
	kr := s.node.GossipKeyring()
	if !kr.Enabled {
		return nil, badRequest(msgGossipUnencrypted)
	}
	return keyringResponse(kr, nil), nil
}

const msgGossipUnencrypted = "gossip encryption is not enabled on this node: start every node with -cluster-key first"

// baseKeys is the keyring a change starts from: the committed one, or this
// (the leader's) own keys before the first change.
func baseKeys(kr status.GossipKeyring) [][]byte {
	if kr.Version > 0 {
		return kr.Replicated
	}
	return kr.Local
}

// parseGossipKey validates the key field: clear 400s, never echoing it.
func parseGossipKey(v string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
	if err != nil {
		return nil, badRequest("key is not valid base64")
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, badRequest(fmt.Sprintf("key must be 16, 24 or 32 bytes (AES-128, -192 or -256), got %d", len(k)))
}

// keyringChange validates the key, lets check decide the new keyring from
// the current one (nil: nothing to change), commits it, and waits until
// done reports that every live member applied it.
func (s *server) keyringChange(ctx context.Context, r *Request,
	check func(kr status.GossipKeyring, base [][]byte, key []byte) ([][]byte, error),
	done func(kr status.GossipKeyring, fp string) bool, what string) (*Response, error) {
	if !s.sudo(r) {
		return nil, newError(http.StatusForbidden, msgACLDenied)
	}
	key, err := parseGossipKey(r.Data.String("key"))
	if err != nil {
		return nil, err
	}
	defer clear(key)
	kr := s.node.GossipKeyring()
	if !kr.Enabled {
		return nil, badRequest(msgGossipUnencrypted)
	}
	next, err := check(kr, baseKeys(kr), key)
	if err != nil {
		return nil, err
	}
	if next != nil {
		res, err := s.propose(ctx, r, fsm.SetGossipKeyring{Keys: next, Prev: kr.Version})
		if err != nil {
			return nil, err
		}
		if errors.Is(res.Err, fsm.ErrGossipKeyringChanged) {
			return nil, badRequest("the gossip keyring changed concurrently; list it and retry")
		}
		if res.Err != nil {
			return nil, res.Err
		}
		s.log.Info("gossip keyring changed", "op", what, "key", status.KeyFingerprint(key), "keys", len(next))
	}
	fp := status.KeyFingerprint(key)
	wctx, cancel := context.WithTimeout(ctx, keyringWait)
	defer cancel()
	t := time.NewTicker(keyringPoll)
	defer t.Stop()
	for {
		kr = s.node.GossipKeyring()
		if done(kr, fp) {
			return keyringResponse(kr, nil), nil
		}
		select {
		case <-wctx.Done():
			warn := fmt.Sprintf("the %s step is committed but has not reached every live member yet; check with keyring list", what)
			return keyringResponse(kr, []string{warn}), nil
		case <-t.C:
		}
	}
}

func (s *server) keyringInstall(ctx context.Context, r *Request) (*Response, error) {
	return s.keyringChange(ctx, r, func(_ status.GossipKeyring, base [][]byte, key []byte) ([][]byte, error) {
		if slices.ContainsFunc(base, func(k []byte) bool { return bytes.Equal(k, key) }) {
			return nil, nil // already installed: Consul's install is idempotent too
		}
		if len(base) >= fsm.MaxGossipKeys {
			return nil, badRequest(fmt.Sprintf("the gossip keyring is full (%d keys): remove a key first", fsm.MaxGossipKeys))
		}
		return append(slices.Clone(base), key), nil
	}, func(kr status.GossipKeyring, fp string) bool {
		return kr.Installed[fp] == kr.Members
	}, "install")
}

func (s *server) keyringUse(ctx context.Context, r *Request) (*Response, error) {
	return s.keyringChange(ctx, r, func(kr status.GossipKeyring, base [][]byte, key []byte) ([][]byte, error) {
		i := slices.IndexFunc(base, func(k []byte) bool { return bytes.Equal(k, key) })
		switch {
		case i < 0:
			return nil, badRequest("key is not installed: install it first")
		case i == 0:
			return nil, nil // already primary
		}
		if n := kr.Installed[status.KeyFingerprint(key)]; n < kr.Members {
			// A member without the key could not read what the others send.
			return nil, badRequest(fmt.Sprintf("key is installed on %d of %d live members: wait until keyring list shows it on every member", n, kr.Members))
		}
		next := append([][]byte{key}, slices.Delete(slices.Clone(base), i, i+1)...)
		return next, nil
	}, func(kr status.GossipKeyring, fp string) bool {
		return kr.Primary[fp] == kr.Members
	}, "use")
}

func (s *server) keyringRemove(ctx context.Context, r *Request) (*Response, error) {
	return s.keyringChange(ctx, r, func(kr status.GossipKeyring, base [][]byte, key []byte) ([][]byte, error) {
		i := slices.IndexFunc(base, func(k []byte) bool { return bytes.Equal(k, key) })
		switch {
		case i < 0:
			return nil, badRequest("key is not installed")
		case i == 0:
			return nil, badRequest("cannot remove the primary gossip key: make another key primary first (use)")
		}
		if n := kr.Primary[status.KeyFingerprint(key)]; n > 0 {
			// They still encrypt with it: the others would drop their packets.
			return nil, badRequest(fmt.Sprintf("%d live members still encrypt with this key: wait until keyring list shows the new primary on every member", n))
		}
		return slices.Delete(slices.Clone(base), i, i+1), nil
	}, func(kr status.GossipKeyring, fp string) bool {
		return kr.Installed[fp] == 0
	}, "remove")
}

// keyringResponse renders a keyring: the committed (or, before the first
// change, this node's) keys, then any other key this node still holds.
func keyringResponse(kr status.GossipKeyring, warnings []string) *Response {
	keys := slices.Clone(baseKeys(kr))
	for _, k := range kr.Local {
		if !slices.ContainsFunc(keys, func(x []byte) bool { return bytes.Equal(x, k) }) {
			keys = append(keys, k)
		}
	}
	list := make([]map[string]any, 0, len(keys))
	for i, k := range keys {
		fp := status.KeyFingerprint(k)
		list = append(list, map[string]any{
			"key":             base64.StdEncoding.EncodeToString(k),
			"primary":         i == 0,
			"members":         kr.Installed[fp],
			"primary_members": kr.Primary[fp],
		})
	}
	return &Response{
		Data:     map[string]any{"keys": list, "num_members": kr.Members, "version": kr.Version},
		Warnings: warnings,
	}
}
