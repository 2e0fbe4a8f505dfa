package httpapi

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/cluster/status"
)

// keyringBody decodes a keyring response's data.
type keyringBody struct {
	Data struct {
		Keys []struct {
			Key            string `json:"key"`
			Primary        bool   `json:"primary"`
			Members        int    `json:"members"`
			PrimaryMembers int    `json:"primary_members"`
		} `json:"keys"`
		NumMembers int    `json:"num_members"`
		Version    uint64 `json:"version"`
	} `json:"data"`
	Errors   []string `json:"errors"`
	Warnings []string `json:"warnings"`
}

func (e *env) keyring(method, op, token, key string) (int, keyringBody) {
	e.t.Helper()
	path := "/v1/sys/keyring/gossip"
	body := ""
	if op != "" {
		path += "/" + op
		b, _ := json.Marshal(map[string]string{"key": key})
		body = string(b)
	}
	code, _, raw := e.do(method, path, token, body)
	var kb keyringBody
	if err := json.Unmarshal([]byte(raw), &kb); err != nil {
		e.t.Fatalf("%s %s: %d %q: %v", method, path, code, raw, err)
	}
	return code, kb
}

func keysOf(kb keyringBody) []string {
	var out []string
	for _, k := range kb.Data.Keys {
		out = append(out, k.Key)
	}
	return out
}

func TestGossipKeyringRotationFlow(t *testing.T) {
	e := newEnv(t, true)
	k1 := base64.StdEncoding.EncodeToString(fakeGossipKey)
	k2 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("2", 32)))

	code, kb := e.keyring("GET", "", e.root, "")
	if code != 200 || strings.Join(keysOf(kb), ",") != k1 || !kb.Data.Keys[0].Primary || kb.Data.NumMembers != 1 || kb.Data.Version != 0 {
		t.Fatalf("initial list: %d %+v", code, kb)
	}
	code, kb = e.keyring("POST", "install", e.root, k2)
	if code != 200 || strings.Join(keysOf(kb), ",") != k1+","+k2 || kb.Data.Keys[1].Members != 1 || kb.Data.Keys[1].Primary || kb.Data.Version != 1 {
		t.Fatalf("install: %d %+v", code, kb)
	}
	// Installing again changes nothing.
	if code, kb = e.keyring("PUT", "install", e.root, k2); code != 200 || kb.Data.Version != 1 {
		t.Fatalf("second install: %d %+v", code, kb)
	}
	if code, kb = e.keyring("POST", "remove", e.root, k1); code != 400 || kb.Errors[0] != "cannot remove the primary gossip key: make another key primary first (use)" {
		t.Fatalf("remove primary: %d %+v", code, kb)
	}
	code, kb = e.keyring("POST", "use", e.root, k2)
	if code != 200 || strings.Join(keysOf(kb), ",") != k2+","+k1 || kb.Data.Keys[0].PrimaryMembers != 1 || kb.Data.Version != 2 {
		t.Fatalf("use: %d %+v", code, kb)
	}
	code, kb = e.keyring("POST", "remove", e.root, k1)
	if code != 200 || strings.Join(keysOf(kb), ",") != k2 || kb.Data.Version != 3 {
		t.Fatalf("remove: %d %+v", code, kb)
	}
	if code, kb = e.keyring("POST", "remove", e.root, k1); code != 400 || kb.Errors[0] != "key is not installed" {
		t.Fatalf("remove again: %d %+v", code, kb)
	}
	if code, kb = e.keyring("POST", "use", e.root, k1); code != 400 || kb.Errors[0] != "key is not installed: install it first" {
		t.Fatalf("use uninstalled: %d %+v", code, kb)
	}
}

func TestGossipKeyringRejects(t *testing.T) {
	e := newEnv(t, true)
	secret := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", 20)))
	bad := []struct{ name, op, key, want string }{
		{"not base64", "install", "not*base64", "key is not valid base64"},
		{"wrong length", "install", secret, "key must be 16, 24 or 32 bytes (AES-128, -192 or -256), got 20"},
		{"empty", "use", "", "missing key"},
		{"short", "remove", base64.StdEncoding.EncodeToString([]byte("x")), "key must be 16, 24 or 32 bytes (AES-128, -192 or -256), got 1"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			code, kb := e.keyring("POST", tc.op, e.root, tc.key)
			if code != http.StatusBadRequest || len(kb.Errors) != 1 || kb.Errors[0] != tc.want {
				t.Fatalf("%d %+v, want 400 %q", code, kb, tc.want)
			}
		})
	}
	if _, kb := e.keyring("GET", "", e.root, ""); kb.Data.Version != 0 {
		t.Fatalf("a rejected request changed the keyring: %+v", kb)
	}
	// Root or sudo only, also for the list (it shows the keys).
	tok := e.tokenWith("default")
	for _, op := range []string{"", "install", "use", "remove"} {
		method := "POST"
		if op == "" {
			method = "GET"
		}
		if code, kb := e.keyring(method, op, tok, base64.StdEncoding.EncodeToString(fakeGossipKey)); code != http.StatusForbidden {
			t.Fatalf("%s %q with a default token: %d %+v", method, op, code, kb)
		}
	}
	e.putPolicy("keyring-ops", `path "sys/keyring/*" { capabilities = ["create", "read", "update"] }`)
	if code, kb := e.keyring("GET", "", e.tokenWith("keyring-ops"), ""); code != http.StatusForbidden {
		t.Fatalf("list without sudo: %d %+v", code, kb)
	}
	e.putPolicy("keyring-sudo", `path "sys/keyring/*" { capabilities = ["create", "read", "update", "sudo"] }`)
	if code, kb := e.keyring("GET", "", e.tokenWith("keyring-sudo"), ""); code != http.StatusOK {
		t.Fatalf("list with sudo: %d %+v", code, kb)
	}
}

// Three live members, of which the others lag: a "use" needs the key on
// every live member, a "remove" no member still encrypting with it.
func TestGossipKeyringStepsWaitForLaggingMembers(t *testing.T) {
	e := newEnv(t, true)
	old := keyringWait
	keyringWait = 300 * time.Millisecond // the lagging members never catch up here
	t.Cleanup(func() { keyringWait = old })
	k1 := base64.StdEncoding.EncodeToString(fakeGossipKey)
	k2raw := []byte(strings.Repeat("2", 32))
	k2 := base64.StdEncoding.EncodeToString(k2raw)
	fp1, fp2 := status.KeyFingerprint(fakeGossipKey), status.KeyFingerprint(k2raw)
	lag := map[string]int{} // per fingerprint: members that do not hold it
	lagPrimary := ""        // the key the lagging members still encrypt with
	e.node.set(func(n *fakeNode) {
		n.keyring = func(kr status.GossipKeyring) status.GossipKeyring {
			kr.Members = 3
			for fp := range kr.Installed {
				kr.Installed[fp] += 2 - lag[fp]
			}
			if lagPrimary != "" {
				for fp := range kr.Primary {
					kr.Primary[fp] = 1
				}
				kr.Primary[lagPrimary] += 2
			} else {
				for fp := range kr.Primary {
					kr.Primary[fp] = 3
				}
			}
			return kr
		}
	})
	lag[fp2] = 1
	code, kb := e.keyring("POST", "install", e.root, k2)
	// Committed, but one member does not report it within the wait.
	if code != 200 || kb.Data.Version != 1 || kb.Data.Keys[1].Members != 2 || len(kb.Warnings) != 1 {
		t.Fatalf("install with a lagging member: %d %+v", code, kb)
	}
	if code, kb = e.keyring("POST", "use", e.root, k2); code != 400 || kb.Errors[0] != "key is installed on 2 of 3 live members: wait until keyring list shows it on every member" {
		t.Fatalf("use before every member holds the key: %d %+v", code, kb)
	}
	delete(lag, fp2)
	lagPrimary = fp1
	if code, kb = e.keyring("POST", "use", e.root, k2); code != 200 || kb.Data.Version != 2 {
		t.Fatalf("use: %d %+v", code, kb)
	}
	if code, kb = e.keyring("POST", "remove", e.root, k1); code != 400 || kb.Errors[0] != "2 live members still encrypt with this key: wait until keyring list shows the new primary on every member" {
		t.Fatalf("remove while members encrypt with the key: %d %+v", code, kb)
	}
	lagPrimary = ""
	if code, kb = e.keyring("POST", "remove", e.root, k1); code != 200 || kb.Data.Version != 3 {
		t.Fatalf("remove: %d %+v", code, kb)
	}
}
