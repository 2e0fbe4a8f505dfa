package test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/test/inproc"
)

// roleStatus is the HTTP status of a client error (0 for nil).
func roleStatus(t *testing.T, err error) (int, string) {
	t.Helper()
	if err == nil {
		return 0, ""
	}
	var re *vaultapi.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("not a response error: %v", err)
	}
	return re.StatusCode, strings.Join(re.Errors, "; ")
}

// TestRolesOnCluster: every role field round-trips through the official
// client on every node; creating with a role works through a follower;
// bad role input is a clear 400 that changes nothing.
func TestRolesOnCluster(t *testing.T) {
	c := inproc.New(t, 3)
	leader := c.WaitForLeader()
	f := c.Followers()[0]
	fc := c.Client(f)

	fields := map[string]any{
		"allowed_policies": []string{"web", "DB"}, "disallowed_policies": "bad,worse", "allowed_policies_glob": "dev-*",
		"disallowed_policies_glob": []string{"*admin*"}, "orphan": false, "renewable": true, "path_suffix": "v2",
		"allowed_entity_aliases": "svc-*", "token_period": "1h", "token_explicit_max_ttl": "48h",
		"token_type": "default-service", "token_bound_cidrs": "127.0.0.0/8", "token_no_default_policy": false,
		"token_num_uses": 0,
	}
	// path_suffix "v2" is too short (Vault needs 3 characters): 400.
	_, err := fc.Logical().Write("auth/token/roles/app", fields)
	if code, msg := roleStatus(t, err); code != 400 || !strings.Contains(msg, "path suffix contains invalid characters") {
		t.Fatalf("short suffix: %d %s", code, msg)
	}
	fields["path_suffix"] = "v2x"
	if _, err := fc.Logical().Write("auth/token/roles/app", fields); err != nil {
		t.Fatalf("write role via follower: %v", err)
	}
	want := map[string]any{
		"name": "app", "allowed_policies": []any{"db", "web"}, "disallowed_policies": []any{"bad", "worse"},
		"allowed_policies_glob": []any{"dev-*"}, "disallowed_policies_glob": []any{"*admin*"},
		"allowed_entity_aliases": []any{"svc-*"}, "orphan": false, "renewable": true, "path_suffix": "v2x",
		"period": json.Number("0"), "token_period": json.Number("3600"), "explicit_max_ttl": json.Number("0"),
		"token_explicit_max_ttl": json.Number("172800"), "token_type": "default-service",
		"token_no_default_policy": false, "token_bound_cidrs": []any{"127.0.0.0/8"},
	}
	for i := range c.Nodes {
		c.WaitFor(5*time.Second, fmt.Sprintf("role on node %d", i), func() bool {
			s, err := c.Client(i).Logical().Read("auth/token/roles/app")
			return err == nil && s != nil && reflect.DeepEqual(s.Data, want)
		})
	}
	list, err := c.Client(leader).Logical().List("auth/token/roles")
	if err != nil || list == nil || !reflect.DeepEqual(list.Data["keys"], []any{"app"}) {
		t.Fatalf("list: %v %v", list, err)
	}

	// Create with the role on a follower (forwarded); valid on every node.
	s, err := fc.Auth().Token().CreateWithRole(&vaultapi.TokenCreateRequest{Policies: []string{"web", "dev-api"}, EntityAlias: "svc-a"}, "app")
	if err != nil {
		t.Fatalf("create with role via follower: %v", err)
	}
	if got := s.Auth.Policies; !reflect.DeepEqual(got, []string{"default", "dev-api", "web"}) || s.Auth.LeaseDuration != 3600 || s.Auth.EntityID == "" {
		t.Fatalf("auth %+v", s.Auth)
	}
	tok := s.Auth.ClientToken
	for i := range c.Nodes {
		c.WaitFor(5*time.Second, fmt.Sprintf("token on node %d", i), func() bool {
			l, err := c.Client(i).Auth().Token().Lookup(tok)
			return err == nil && l.Data["role"] == "app" && l.Data["path"] == "auth/token/create/app/v2x" &&
				reflect.DeepEqual(l.Data["bound_cidrs"], []any{"127.0.0.0/8"}) && l.Data["entity_id"] == s.Auth.EntityID
		})
	}
	// The token is bound to 127.0.0.0/8: usable from here through any node.
	for i := range c.Nodes {
		tc := c.Client(i)
		tc.SetToken(tok)
		if _, err := tc.Auth().Token().LookupSelf(); err != nil {
			t.Fatalf("lookup-self on node %d: %v", i, err)
		}
	}
	// Policy filtering through the role.
	_, err = fc.Auth().Token().CreateWithRole(&vaultapi.TokenCreateRequest{Policies: []string{"ops"}}, "app")
	if code, msg := roleStatus(t, err); code != 400 || !strings.Contains(msg, "must be subset of the role's allowed policies") {
		t.Fatalf("not allowed: %d %s", code, msg)
	}
	_, err = fc.Auth().Token().CreateWithRole(&vaultapi.TokenCreateRequest{Policies: []string{"dev-admin"}}, "app")
	if code, msg := roleStatus(t, err); code != 400 || msg != `token policy "dev-admin" is disallowed by this role` {
		t.Fatalf("disallowed: %d %s", code, msg)
	}
	_, err = fc.Auth().Token().CreateWithRole(&vaultapi.TokenCreateRequest{}, "nope")
	if code, msg := roleStatus(t, err); code != 400 || msg != "unknown role nope" {
		t.Fatalf("unknown role: %d %s", code, msg)
	}

	// Bad input: 400, the stored role unchanged.
	bad := []struct {
		body map[string]any
		msg  string
	}{
		{map[string]any{"path_suffix": "a/b/c"}, "path suffix contains invalid characters"},
		{map[string]any{"path_suffix": "v1..x"}, "path cannot contain parent references"},
		{map[string]any{"token_type": "batch"}, "'token_type' cannot be 'batch' when role is set to generate non-orphan tokens"},
		{map[string]any{"token_bound_cidrs": "10.0.0.0/99"}, `error parsing address "10.0.0.0/99"`},
		{map[string]any{"bound_cidrs": []string{"not-an-ip"}}, `error parsing bound_cidrs`},
		{map[string]any{"token_num_uses": -1}, "'token_num_uses' cannot be negative"},
		{map[string]any{"token_type": "weird"}, `invalid 'token_type' value "weird"`},
	}
	for _, b := range bad {
		_, err := fc.Logical().Write("auth/token/roles/app", b.body)
		if code, msg := roleStatus(t, err); code != 400 || !strings.Contains(msg, b.msg) {
			t.Fatalf("%v: %d %s", b.body, code, msg)
		}
	}
	got, err := c.Client(leader).Logical().Read("auth/token/roles/app")
	if err != nil || !reflect.DeepEqual(got.Data, want) {
		t.Fatalf("role changed by bad writes: %v %v", got, err)
	}
	// Delete through a follower: gone everywhere; renewing its token is a 500.
	if _, err := fc.Logical().Delete("auth/token/roles/app"); err != nil {
		t.Fatal(err)
	}
	_, err = c.Client(leader).Auth().Token().Renew(tok, 0)
	if code, msg := roleStatus(t, err); code != 500 || msg != `original token role "app" could not be found, not renewing` {
		t.Fatalf("renew after delete: %d %s", code, msg)
	}
}

// TestRevokePrefixTenThousand: 10,000 tokens created under one role are
// revoked by one revoke-prefix call; afterwards none validates on any node,
// and tokens of another role are untouched.
func TestRevokePrefixTenThousand(t *testing.T) {
	const n = 10000
	// Production raft timers: with millisecond timers the load of 32
	// concurrent writers under -race can starve heartbeats into elections.
	c := inproc.NewWith(t, 3, inproc.Options{Timing: cluster.DefaultTiming()})
	leader := c.WaitForLeader()
	lc := c.Client(leader)
	for _, role := range []string{"bulk", "keep"} {
		if _, err := lc.Logical().Write("auth/token/roles/"+role, map[string]any{"path_suffix": "gen1", "orphan": true}); err != nil {
			t.Fatal(err)
		}
	}
	rc := newRawClient(t, c.RootToken)
	// createOne retries a 503 (a leader change under load) through any
	// node: a create that answered 503 issued nothing.
	createOne := func(i int) (string, error) {
		var last string
		for attempt := 0; attempt < 20; attempt++ {
			code, out, err := rc.do(c.Addr((i+attempt)%len(c.Nodes)), "POST", "/v1/auth/token/create/bulk", c.RootToken, map[string]any{"ttl": "1h"})
			auth, _ := out["auth"].(map[string]any)
			if id, _ := auth["client_token"].(string); err == nil && code == http.StatusOK && id != "" {
				return id, nil
			}
			last = fmt.Sprintf("%d %v %v", code, out, err)
			if err == nil && code != http.StatusServiceUnavailable {
				break
			}
			time.Sleep(100 * time.Millisecond) // back off while a leader is elected
		}
		return "", fmt.Errorf("create %d: %s", i, last)
	}
	tokens := make([]string, n)
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || firstErr.Load() != nil {
					return
				}
				id, err := createOne(i)
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				tokens[i] = id
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		t.Fatal(e)
	}
	t.Logf("created %d role tokens in %v (%.0f/s)", n, time.Since(start), float64(n)/time.Since(start).Seconds())
	base := c.Addr(c.WaitForLeader())
	keep, _ := rc.create(base, map[string]any{"ttl": "1h"})
	_, out, _ := rc.do(base, "POST", "/v1/auth/token/create/keep", c.RootToken, map[string]any{"ttl": "1h"})
	keepRole := out["auth"].(map[string]any)["client_token"].(string)

	// One call, through a follower (forwarded to the leader). Retried only
	// on a 503 (no leader: nothing acknowledged; revoking again is harmless).
	fc := c.Client(c.Followers()[0])
	fc.SetClientTimeout(2 * time.Minute)
	revStart := time.Now()
	for attempt := 0; ; attempt++ {
		err := fc.Sys().RevokePrefix("auth/token/create/bulk")
		if err == nil {
			break
		}
		if code, _ := roleStatus(t, err); code != http.StatusServiceUnavailable || attempt == 5 {
			t.Fatalf("revoke-prefix: %v", err)
		}
		c.WaitForLeader()
		revStart = time.Now()
	}
	t.Logf("revoke-prefix of %d tokens took %v", n, time.Since(revStart))

	// Acknowledged: on every node, none of them validates (checked in the
	// node's state for all of them, and through HTTP for a sample).
	now := time.Now().UnixNano()
	for i := range c.Nodes {
		st := c.Cluster(i).State()
		for _, tok := range tokens {
			if _, ok := st.Valid(c.Hasher.Hash(tok), now); ok {
				t.Fatalf("node %d still validates a revoked token", i)
			}
		}
		for _, tok := range []string{keep, keepRole} {
			if _, ok := st.Valid(c.Hasher.Hash(tok), now); !ok {
				c.WaitFor(5*time.Second, "unrelated token replicated", func() bool {
					_, ok := st.Valid(c.Hasher.Hash(tok), time.Now().UnixNano())
					return ok
				})
			}
		}
		for j := 0; j < n; j += n / 50 {
			if code, err := rc.lookup(c.Addr(i), tokens[j]); err != nil || code != http.StatusForbidden {
				t.Fatalf("node %d: lookup of revoked token: %d %v", i, code, err)
			}
		}
	}
}

// TestTidyRepairsLeaderIndex: an index of the leader's state is corrupted
// (test-only); tidy, sent to a follower, repairs it through raft and
// reports the counts.
func TestTidyRepairsLeaderIndex(t *testing.T) {
	c := inproc.New(t, 3)
	leader := c.WaitForLeader()
	lc := c.Client(leader)
	parent := createToken(t, lc, &vaultapi.TokenCreateRequest{TTL: "1h"})
	pc := c.Client(leader)
	pc.SetToken(parent.Auth.ClientToken)
	child := createToken(t, pc, &vaultapi.TokenCreateRequest{TTL: "1h"})

	f, ok := c.Cluster(leader).State().(*fsm.FSM)
	if !ok {
		t.Fatal("leader state is not an *fsm.FSM")
	}
	ch := c.Hasher.Hash(child.Auth.ClientToken)
	for _, kind := range []string{fsm.CorruptAccessorMissing, fsm.CorruptChildrenMissing, fsm.CorruptExpiryMissing} {
		if err := fsm.CorruptIndexForTest(f, kind, ch); err != nil {
			t.Fatal(err)
		}
	}
	if got := f.Check().Total(); got != 3 {
		t.Fatalf("check before tidy: %d", got)
	}
	s, err := c.Client(c.Followers()[0]).Logical().Write("auth/token/tidy", nil)
	if err != nil || s == nil {
		t.Fatalf("tidy: %v", err)
	}
	if len(s.Warnings) != 1 || !strings.HasPrefix(s.Warnings[0], "Tidy operation successfully started") {
		t.Fatalf("warnings %q", s.Warnings)
	}
	for k, want := range map[string]string{"accessors_missing": "1", "children_missing": "1", "expiry_missing": "1", "repairs_total": "3"} {
		if got := fmt.Sprint(s.Data[k]); got != want {
			t.Errorf("%s = %s, want %s (%v)", k, got, want, s.Data)
		}
	}
	if got := f.Check(); got.Total() != 0 {
		t.Fatalf("check after tidy: %+v", got)
	}
	if !strings.Contains(c.LogOutput(), "tidy finished") {
		t.Fatal("no tidy log line")
	}
	// The repaired index works: revoking the parent takes the child.
	if err := lc.Auth().Token().RevokeTree(parent.Auth.ClientToken); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Token(ch); ok {
		t.Fatal("child outlived its parent on the leader")
	}
}
