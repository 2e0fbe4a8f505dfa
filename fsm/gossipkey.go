package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
)

// MaxGossipKeys bounds the gossip keyring: rotation needs two keys at a
// time, and every key's fingerprint rides in gossip metadata (512 bytes).
const MaxGossipKeys = 8

// ErrGossipKeyringChanged: SetGossipKeyring was based on an older version
// of the keyring (another rotation step committed first).
var ErrGossipKeyringChanged = errors.New("gossip keyring changed concurrently")

// SetGossipKeyring replaces the gossip (memberlist) encryption keyring with
// Keys, primary first. Each step of a rotation (install, use, remove) is one
// complete keyring, so a node that replays only the latest one still ends
// with the right keys. Prev must be the version the proposer read
// (GossipKeyring); a mismatch fails with ErrGossipKeyringChanged and changes
// nothing, so two concurrent steps cannot undo each other.
//
// Secrecy: the keys are cluster secrets stored in the log and snapshots,
// like Consul's keyring file in its data dir; they protect gossip, not the
// tokens (whose hash key is never in the state).
type SetGossipKeyring struct {
	Keys [][]byte `json:"keys"`
	Prev uint64   `json:"prev"`
}

// CommandType implements Command.
func (SetGossipKeyring) CommandType() Type { return TypeSetGossipKeyring }

// gossipKeyring is the replicated gossip keyring; version counts the
// SetGossipKeyring commands applied (0 = never set: nodes use their
// -cluster-key).
type gossipKeyring struct {
	Keys    [][]byte `json:"keys"`
	Version uint64   `json:"version"`
}

// validGossipKeys checks a keyring: 1 to MaxGossipKeys distinct keys of 16,
// 24 or 32 bytes (AES-128/192/256, what memberlist accepts).
func validGossipKeys(keys [][]byte) error {
	if len(keys) == 0 || len(keys) > MaxGossipKeys {
		return fmt.Errorf("%d gossip keys, want 1 to %d", len(keys), MaxGossipKeys)
	}
	for i, k := range keys {
		switch len(k) {
		case 16, 24, 32:
		default:
			// Secrecy: the position, never the key.
			return fmt.Errorf("gossip key %d has %d bytes, want 16, 24 or 32", i, len(k))
		}
		for _, o := range keys[:i] {
			if bytes.Equal(o, k) {
				return fmt.Errorf("gossip key %d is a duplicate", i)
			}
		}
	}
	return nil
}

func applySetGossipKeyring(s *state, c SetGossipKeyring) Result {
	if err := validGossipKeys(c.Keys); err != nil {
		return Result{Err: fmt.Errorf("set gossip keyring: %v: %w", err, ErrInvalidCommand)}
	}
	if c.Prev != s.gossipKeys.Version {
		return Result{Err: fmt.Errorf("set gossip keyring: based on version %d, now %d: %w", c.Prev, s.gossipKeys.Version, ErrGossipKeyringChanged)}
	}
	keys := make([][]byte, len(c.Keys))
	for i, k := range c.Keys {
		keys[i] = slices.Clone(k)
	}
	s.gossipKeys = gossipKeyring{Keys: keys, Version: s.gossipKeys.Version + 1}
	return Result{}
}

// GossipKeyring returns the replicated gossip keyring (copies), primary
// first, and its version (0 and no keys before the first SetGossipKeyring).
func (f *FSM) GossipKeyring() (keys [][]byte, version uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, k := range f.st.gossipKeys.Keys {
		keys = append(keys, slices.Clone(k))
	}
	return keys, f.st.gossipKeys.Version
}
