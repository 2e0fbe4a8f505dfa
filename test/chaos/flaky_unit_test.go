package chaos

import (
	"strings"
	"testing"
)

func TestKeepAliveGoroutines(t *testing.T) {
	profile := `goroutine profile: total 14
5 @ 0x1 0x2
#	0x74eb91	net/http.(*persistConn).readLoop+0x171		/usr/local/go/src/net/http/transport.go:2330

5 @ 0x1 0x3
#	0x750545	net/http.(*persistConn).writeLoop+0xe5	/usr/local/go/src/net/http/transport.go:2652

2 @ 0x1 0x4
#	0x6b25f2	bufio.(*Reader).Peek+0x52			/usr/local/go/src/bufio/bufio.go:152
#	0x733d12	net/http.(*conn).serve+0x7f2			/usr/local/go/src/net/http/server.go:2103

1 @ 0x1 0x5
#	0x733baf	net/http.(*conn).serve+0x68f								/usr/local/go/src/net/http/server.go:2067

1 @ 0x1 0x6
#	0x87f0b2	github.com/hashicorp/raft.(*NetworkTransport).handleConn+0x3b2
`
	if got := keepAliveGoroutines([]byte(profile)); got != 12 {
		t.Fatalf("keep-alive goroutines = %d, want 12 (5 read + 5 write loops + 2 idle server conns)", got)
	}
}

func TestHeapLimit(t *testing.T) {
	b := NodeRuntime{Heap: 10 << 20, Tokens: 100, KeepAlive: 10}
	a := NodeRuntime{Heap: 0, Tokens: 1100, KeepAlive: 5}
	// 1.5 x 10 MiB + 1000 tokens x 1 KiB + 2 peers x 2 x 4 raft connections x 512 KiB;
	// fewer keep-alive goroutines add nothing.
	if got, want := heapLimit(b, a, 2), uint64(15<<20)+1000<<10+8<<20; got != want {
		t.Fatalf("heapLimit = %d, want %d", got, want)
	}
}

func TestLinkMeshRules(t *testing.T) {
	c, err := NewCluster("tokend", t.TempDir(), 3, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := &linkMesh{c: c}
	text := string(m.natRules())
	for _, want := range []string{
		// n1 (gid 2001) to n2 (127.0.0.3) goes through link 1->2's proxies.
		"meta skgid 2001 ip daddr 127.0.0.3 tcp dport { 8200, 8201, 8301 } dnat to 127.1.1.2",
		"meta skgid 2001 ip daddr 127.0.0.3 udp dport 8301 dnat to 127.1.1.2",
		"meta skgid 2003 ip daddr 127.0.0.2 udp dport 8301 dnat to 127.1.3.1",
		`meta skgid 2002 ip daddr { 127.0.0.2, 127.0.0.4 } counter name "bypass_n2"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("nat rules lack %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "dnat to 127.1.1.1") {
		t.Errorf("a node is redirected to itself:\n%s", text)
	}
	if got := sumCounters([]byte("counter packets 3 bytes 120 drop\ncounter packets 4 bytes 9 drop")); got != 7 {
		t.Errorf("sumCounters = %d, want 7", got)
	}
}
