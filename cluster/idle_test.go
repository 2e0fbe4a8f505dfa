package cluster

import (
	"io"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestForwardBurstFreesConnections: the connections a burst of concurrent
// forwards opens to the leader close soon after the burst (chaos T10:
// goroutines back near their baseline within 10 s of a request storm).
func TestForwardBurstFreesConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for idle connections to time out; skipped with -short (testing.Short)")
	}
	c := newCluster(t, 3)
	leader := c.waitLeader()
	f := c.followers(leader)[0]
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	burst := func() {
		var wg sync.WaitGroup
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Post("http://"+f.httpAddr+"/v1/x", "text/plain", nil)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()
		}
		wg.Wait()
	}
	burst() // warm up: every lazily started loop runs
	time.Sleep(forwardIdleTimeout + 2*time.Second)
	base := runtime.NumGoroutine()
	burst()
	peak := runtime.NumGoroutine()
	time.Sleep(forwardIdleTimeout + 2*time.Second)
	after := runtime.NumGoroutine()
	t.Logf("goroutines: baseline %d, right after the burst %d, %s later %d", base, peak, forwardIdleTimeout+2*time.Second, after)
	if after > base+base/10+5 {
		t.Fatalf("goroutines %d, %s after a burst of forwards (baseline %d): idle forward connections linger",
			after, forwardIdleTimeout+2*time.Second, base)
	}
}
