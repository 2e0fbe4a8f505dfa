package httpapi

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/tokend/tokend/cluster/status"
)

// TestClusterErrorsAreRetryable503s: every cluster condition a client can
// wait out answers 503 with Retry-After (RELIABILITY T1: the only errors a
// client may see during a failover), wrapped or not.
func TestClusterErrorsAreRetryable503s(t *testing.T) {
	for _, err := range []error{status.ErrNotLeader, status.ErrNoLeader, status.ErrStale, status.ErrTimeout,
		status.ErrShuttingDown, status.ErrLeaderLost, status.ErrLeaderChanged} {
		for _, e := range []error{err, fmt.Errorf("forward: %w", err)} {
			ae := errorResponse(e)
			if ae.Status != http.StatusServiceUnavailable || !ae.RetryAfter || ae.Msg != e.Error() {
				t.Errorf("%v: %d retry-after=%v %q, want 503 with Retry-After and the error text", e, ae.Status, ae.RetryAfter, ae.Msg)
			}
		}
	}
}
