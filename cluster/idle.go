package cluster

import "time"

// forwardIdleTimeout closes an idle keep-alive connection to the leader
// (forwarding, lease grants) after this long. A burst of concurrent
// forwards opens one connection each (up to MaxIdleConnsPerHost); with the
// old 30 s they and their goroutines (two on this side, one on the
// leader's) outlived a request storm by half a minute (chaos T10: 372
// goroutines 30 s after the storm against a baseline of 120). 5 s keeps
// them across the gaps of a steady load and frees them soon after it ends.
const forwardIdleTimeout = 5 * time.Second
