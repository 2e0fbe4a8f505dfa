package cluster

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzGossipMeta: member metadata arrives from the network; decodeMeta
// never panics, and what it accepts names the member, has a host:port raft
// address and survives a round trip.
func FuzzGossipMeta(f *testing.F) {
	good, _ := json.Marshal(nodeMeta{ID: "n1", RaftAddr: "127.0.0.1:8201", HTTPAddr: "127.0.0.1:8200", Version: "1", Bootstrapped: true})
	f.Add("n1", good)
	f.Add("n2", good)
	f.Add("n1", []byte(`{"id":"n1","raft_addr":"[::1]:1"}`))
	f.Add("n1", []byte(`{"id":"n1","raft_addr":"x","http_addr":"127.0.0.1:80"}`))
	f.Add("n1", []byte(`{"id":"n1","raft_addr":"127.0.0.1:1","leaving":"yes"}`))
	f.Add("", []byte(`{}`))
	f.Add("n1", []byte{})
	f.Add("n1", []byte(`[`))
	f.Fuzz(func(t *testing.T, name string, b []byte) {
		m, err := decodeMeta(name, b)
		if err != nil {
			return
		}
		if m.ID != name || m.ID == "" || m.RaftAddr == "" {
			t.Fatalf("accepted %q for %q: %+v", b, name, m)
		}
		again, _ := json.Marshal(m)
		m2, err := decodeMeta(name, again)
		if err != nil || !reflect.DeepEqual(m2, m) {
			t.Fatalf("round trip: %+v → %+v %v", m, m2, err)
		}
	})
}
