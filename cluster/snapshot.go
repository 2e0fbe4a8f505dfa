package cluster

// Snapshot asks raft to take a snapshot of the state machine now and waits
// for it to be written under the data dir (operators and tests use it to
// compact the log on demand).
func (n *Node) Snapshot() error {
	return n.raft.Snapshot().Error()
}
