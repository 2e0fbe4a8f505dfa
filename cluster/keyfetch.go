package cluster

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/memberlist"
)

// KeyringPath is the node-to-node endpoint from which a member that missed
// a keyring rotation (it was down, or left gossip) fetches the current
// gossip keyring. Anyone may ask; the answer is sealed with AES-256-GCM
// under a key derived from the token hash key, which only cluster members
// hold, and bound to the asker's random challenge (doc.go, "Gossip
// keyring").
const KeyringPath = InternalPathPrefix + "gossip-keyring"

// keyringFetchTimeout bounds one fetch from one peer.
const keyringFetchTimeout = 2 * time.Second

// deriveTransferKey separates the transfer key from the token hash key
// (HMAC as a KDF with its own label): the token hash key itself never
// encrypts anything.
func deriveTransferKey(tokenHashKey []byte) []byte {
	m := hmac.New(sha256.New, tokenHashKey)
	m.Write([]byte("tokend gossip keyring transfer v1"))
	return m.Sum(nil)
}

// sealedKeyring is the answer of KeyringPath.
type sealedKeyring struct {
	Sealed string `json:"sealed"` // base64(nonce || AES-GCM(keyringPlain))
}

// keyringPlain is what the answer seals.
type keyringPlain struct {
	Version uint64   `json:"version"`
	Keys    [][]byte `json:"keys"`
}

func (n *Node) keyringAEAD() (cipher.AEAD, error) {
	block, err := aes.NewCipher(n.transferKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// aad binds a sealed keyring to the asker's challenge and the answering
// node, so an old answer cannot be replayed to a later fetch.
func keyringAAD(challenge, from string) []byte {
	return []byte("tokend gossip keyring v1\x00" + challenge + "\x00" + from)
}

// serveKeyring answers KeyringPath?challenge=<32 hex>.
func (n *Node) serveKeyring(w http.ResponseWriter, r *http.Request) {
	challenge := r.URL.Query().Get("challenge")
	if b, err := hex.DecodeString(challenge); err != nil || len(b) != 16 {
		writeInternalError(w, http.StatusBadRequest, "challenge must be 32 hex digits")
		return
	}
	if n.keyring == nil {
		writeInternalError(w, http.StatusNotFound, "gossip is not encrypted")
		return
	}
	n.keyMu.Lock()
	plain, err := json.Marshal(keyringPlain{Version: n.keyVersion, Keys: n.keyring.GetKeys()})
	n.keyMu.Unlock()
	aead, err2 := n.keyringAEAD()
	if err != nil || err2 != nil {
		writeInternalError(w, http.StatusInternalServerError, "internal error")
		return
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		writeInternalError(w, http.StatusInternalServerError, "internal error")
		return
	}
	sealed := aead.Seal(nonce, nonce, plain, keyringAAD(challenge, n.id))
	clear(plain)
	w.Header().Set("X-Tokend-Node", n.id)
	writeInternalJSON(w, http.StatusOK, sealedKeyring{Sealed: base64.StdEncoding.EncodeToString(sealed)})
}

// fetchKeyring asks the peers this node last saw for their keyring and
// applies the newest one that is newer than its own. It reports whether
// the keyring changed.
func (n *Node) fetchKeyring(ctx context.Context) bool {
	if n.keyring == nil {
		return false
	}
	n.keyMu.Lock()
	peers := append([]string(nil), n.peers...)
	n.keyMu.Unlock()
	var best keyringPlain
	from := ""
	for _, p := range peers {
		kp, id, err := n.fetchKeyringFrom(ctx, p)
		if err != nil {
			n.logger.Debug("gossip keyring fetch failed", "peer", p, "error", err)
			continue
		}
		if kp.Version > best.Version {
			best, from = kp, id
		}
	}
	if best.Version == 0 {
		return false
	}
	return n.applyKeyring(best.Keys, best.Version, "peer "+from)
}

func (n *Node) fetchKeyringFrom(ctx context.Context, httpAddr string) (keyringPlain, string, error) {
	var kp keyringPlain
	c := make([]byte, 16)
	if _, err := rand.Read(c); err != nil {
		return kp, "", err
	}
	challenge := hex.EncodeToString(c)
	ctx, cancel := context.WithTimeout(ctx, keyringFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+KeyringPath+"?challenge="+challenge, nil)
	if err != nil {
		return kp, "", err
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return kp, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInternalBody))
	if err != nil {
		return kp, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return kp, "", fmt.Errorf("status %d", resp.StatusCode)
	}
	var sk sealedKeyring
	if err := json.Unmarshal(body, &sk); err != nil {
		return kp, "", errors.New("undecodable answer")
	}
	sealed, err := base64.StdEncoding.DecodeString(sk.Sealed)
	aead, err2 := n.keyringAEAD()
	if err != nil || err2 != nil || len(sealed) < aead.NonceSize() {
		return kp, "", errors.New("malformed answer")
	}
	from := resp.Header.Get("X-Tokend-Node")
	ns := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[:ns], sealed[ns:], keyringAAD(challenge, from))
	if err != nil {
		// Another cluster's node (other token hash key) or a forgery.
		return kp, "", errors.New("answer does not authenticate")
	}
	defer clear(plain)
	if err := json.Unmarshal(plain, &kp); err != nil || len(kp.Keys) == 0 {
		return kp, "", errors.New("malformed keyring")
	}
	for _, k := range kp.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return kp, "", err
		}
	}
	return kp, from, nil
}
