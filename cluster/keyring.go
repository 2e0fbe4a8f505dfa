package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

// keyringFileName is the node's copy of the gossip keyring in its data dir
// (like Consul's serf/local.keyring): a restarted node gossips with the
// keys it last used, not with its original -cluster-key.
const keyringFileName = "gossip-keyring"

// maxRetired and maxPeers bound the lists kept in the file.
const (
	maxRetired = 32
	maxPeers   = 16
)

// savedKeyring is the content of keyringFileName.
type savedKeyring struct {
	// Version is the replicated keyring version Keys came from (0: the
	// node's -cluster-key, never rotated).
	Version uint64 `json:"version"`
	// Keys are the gossip keys, primary first (base64 in the file).
	Keys [][]byte `json:"keys"`
	// Retired are fingerprints of keys a rotation removed: a -cluster-key
	// among them is a stale flag, not an operator's new key.
	Retired []string `json:"retired,omitempty"`
	// Peers are the HTTP addresses of the other members when the node last
	// saw them (keyfetch.go).
	Peers []string `json:"peers,omitempty"`
}

func readKeyringFile(dataDir string) (savedKeyring, bool, error) {
	var s savedKeyring
	b, err := os.ReadFile(filepath.Join(dataDir, keyringFileName))
	if errors.Is(err, os.ErrNotExist) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("read gossip keyring: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		// Secrecy: never the content.
		return s, false, fmt.Errorf("gossip keyring file %s does not decode", filepath.Join(dataDir, keyringFileName))
	}
	for _, k := range s.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return s, false, fmt.Errorf("gossip keyring file %s: %w", filepath.Join(dataDir, keyringFileName), err)
		}
	}
	if len(s.Keys) == 0 {
		return s, false, fmt.Errorf("gossip keyring file %s holds no key", filepath.Join(dataDir, keyringFileName))
	}
	return s, true, nil
}

// writeKeyringFile replaces the keyring file atomically (0600, synced).
func writeKeyringFile(dataDir string, s savedKeyring) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	path := filepath.Join(dataDir, keyringFileName)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write gossip keyring: %w", err)
	}
	return nil
}

func containsKey(keys [][]byte, k []byte) bool {
	return slices.ContainsFunc(keys, func(x []byte) bool { return bytes.Equal(x, k) })
}

func fingerprints(keys [][]byte) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = status.KeyFingerprint(k)
	}
	return out
}

// setupKeyring decides the keys gossip starts with (nil: no encryption).
// The newest of the keyring file and the replicated keyring restored from
// the last snapshot wins; -cluster-key only seeds a node that has neither,
// unless it is a key this node never saw removed (an operator recovering a
// node that missed a rotation: doc.go, "Gossip keyring").
func (n *Node) setupKeyring() (*memberlist.Keyring, error) {
	saved, haveSaved, err := readKeyringFile(n.cfg.DataDir)
	if err != nil {
		return nil, err
	}
	fsmKeys, fsmVersion := n.fsm.GossipKeyring()
	var keys [][]byte
	var version uint64
	switch {
	case haveSaved && saved.Version >= fsmVersion:
		keys, version = saved.Keys, saved.Version
	case fsmVersion > 0:
		keys, version = fsmKeys, fsmVersion
	}
	flagKey := n.cfg.ClusterKey
	switch {
	case len(keys) == 0 && len(flagKey) == 0:
		return nil, nil
	case len(keys) == 0:
		keys = [][]byte{flagKey}
	case len(flagKey) == 0:
		n.logger.Info("gossip encrypted with the saved keyring (no -cluster-key given)", "keys", len(keys))
	case containsKey(keys, flagKey):
	case slices.Contains(saved.Retired, status.KeyFingerprint(flagKey)):
		n.logger.Info("-cluster-key was removed by a keyring rotation; using the saved keyring", "keys", len(keys))
	default:
		n.logger.Warn("-cluster-key is not in the saved keyring; using it as the primary gossip key", "keys", len(keys)+1)
		keys = append([][]byte{flagKey}, keys...)
		if len(keys) > fsm.MaxGossipKeys {
			keys = keys[:fsm.MaxGossipKeys]
		}
	}
	kr, err := memberlist.NewKeyring(keys, keys[0])
	if err != nil {
		return nil, fmt.Errorf("gossip keyring: %w", err)
	}
	n.keyring, n.keyVersion, n.retired, n.peers = kr, version, saved.Retired, saved.Peers
	if err := n.saveLocked(); err != nil {
		return nil, err
	}
	return kr, nil
}

// pokeKeyring wakes the keyring loop (never blocks).
func (n *Node) pokeKeyring() {
	select {
	case n.keyringCh <- struct{}{}:
	default:
	}
}

// keyringLoop applies the replicated keyring to memberlist whenever a
// SetGossipKeyring is applied or a snapshot restored, and every
// ReconcileInterval in case a poke was missed.
func (n *Node) keyringLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.timing.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-n.keyringCh:
		case <-t.C:
		}
		n.syncKeyring()
	}
}

// syncKeyring makes this node's gossip keyring equal to the replicated one
// if that is newer, and keeps the saved peer list current.
func (n *Node) syncKeyring() {
	keys, version := n.fsm.GossipKeyring()
	if version > 0 {
		n.applyKeyring(keys, version, "raft")
	}
	n.savePeers()
}

// applyKeyring makes this node's gossip keyring keys (primary first) at
// version, if that is newer than what it has: add the new keys first, then
// switch the primary, then drop the rest, so the node can decrypt every
// key in use at each step. It reports whether it changed anything.
func (n *Node) applyKeyring(keys [][]byte, version uint64, source string) bool {
	n.keyMu.Lock()
	if version == 0 || version <= n.keyVersion {
		n.keyMu.Unlock()
		return false
	}
	if n.keyring == nil {
		n.keyVersion = version
		n.keyMu.Unlock()
		n.logger.Error("gossip keyring changed but this node gossips unencrypted; restart it with -cluster-key", "version", version)
		return false
	}
	before := n.keyring.GetKeys()
	for _, k := range keys {
		if err := n.keyring.AddKey(k); err != nil {
			n.keyMu.Unlock()
			n.logger.Error("gossip key install failed", "version", version, "error", err)
			return false
		}
	}
	if err := n.keyring.UseKey(keys[0]); err != nil {
		n.keyMu.Unlock()
		n.logger.Error("gossip primary key change failed", "version", version, "error", err)
		return false
	}
	for _, k := range before {
		if !containsKey(keys, k) {
			if err := n.keyring.RemoveKey(k); err != nil {
				n.logger.Warn("gossip key removal failed", "version", version, "error", err)
				continue
			}
			n.retired = append(n.retired, status.KeyFingerprint(k))
		}
	}
	if len(n.retired) > maxRetired {
		n.retired = n.retired[len(n.retired)-maxRetired:]
	}
	n.keyVersion = version
	now := n.keyring.GetKeys()
	err := n.saveLocked()
	n.keyMu.Unlock()
	if err != nil {
		// Gossip already uses the new keys; only a restart would fall back.
		n.logger.Error("saving the gossip keyring failed", "error", err)
	}
	n.logger.Info("gossip keyring updated", "version", version, "keys", len(now), "source", source)
	n.mu.Lock()
	n.meta.GossipKeys = fingerprints(now)
	n.mu.Unlock()
	if err := n.ml.UpdateNode(n.timing.LeaveTimeout); err != nil {
		n.logger.Warn("gossip metadata update failed", "error", err)
	}
	return true
}

// saveLocked writes the keyring file from the current state; keyMu held.
func (n *Node) saveLocked() error {
	return writeKeyringFile(n.cfg.DataDir, savedKeyring{Version: n.keyVersion, Keys: n.keyring.GetKeys(),
		Retired: n.retired, Peers: n.peers})
}

// savePeers records the HTTP addresses of the live members in the keyring
// file when they changed: a node that comes back after missing a rotation
// asks them for the keyring (keyfetch.go).
func (n *Node) savePeers() {
	if n.keyring == nil {
		return
	}
	var peers []string
	for id, m := range n.liveMembers() {
		if id != n.id && m.meta.HTTPAddr != "" {
			peers = append(peers, m.meta.HTTPAddr)
		}
	}
	if len(peers) == 0 {
		return // alone (or not joined yet): keep the last known peers
	}
	slices.Sort(peers)
	if len(peers) > maxPeers {
		peers = peers[:maxPeers]
	}
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	if slices.Equal(peers, n.peers) {
		return
	}
	n.peers = peers
	if err := n.saveLocked(); err != nil {
		n.logger.Warn("saving the gossip keyring failed", "error", err)
	}
}

// GossipKeyring implements httpapi.Node: the keyring as this node sees it.
func (n *Node) GossipKeyring() status.GossipKeyring {
	rep, version := n.fsm.GossipKeyring()
	out := status.GossipKeyring{
		Version:    version,
		Replicated: rep,
		Installed:  map[string]int{},
		Primary:    map[string]int{},
	}
	if n.keyring == nil {
		return out
	}
	out.Enabled = true
	out.Local = n.keyring.GetKeys()
	count := func(fps []string) {
		out.Members++
		for i, fp := range fps {
			out.Installed[fp]++
			if i == 0 {
				out.Primary[fp]++
			}
		}
	}
	// This node from its own keyring (its metadata may not have gone
	// round yet), the others from what they publish.
	count(fingerprints(out.Local))
	for id, m := range n.liveMembers() {
		if id != n.id {
			count(m.meta.GossipKeys)
		}
	}
	return out
}

// TokenHasher implements httpapi.Node: the hasher of the cluster's token
// hash key (Config.TokenHashKey).
func (n *Node) TokenHasher() *fsm.Hasher { return n.hasher }
