package fsm

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
)

// clone returns a deep copy of k.
func (k *BatchKey) clone() BatchKey {
	c := *k
	c.Key = slices.Clone(k.Key)
	return c
}

// Secrecy: errors name key IDs, never key material.
func applyRotateBatchKey(s *state, c RotateBatchKey) Result {
	switch {
	case c.KeyID == 0:
		return Result{Err: fmt.Errorf("rotate batch key: key id 0: %w", ErrInvalidCommand)}
	case len(c.Key) != BatchKeySize:
		return Result{Err: fmt.Errorf("rotate batch key %d: key of %d bytes, want %d: %w", c.KeyID, len(c.Key), BatchKeySize, ErrInvalidCommand)}
	}
	if old, ok := s.batchKeys[c.KeyID]; ok {
		if c.KeyID == s.batchPrimary && bytes.Equal(old.Key, c.Key) {
			return Result{} // a retried proposal of the current primary
		}
		return Result{Err: fmt.Errorf("rotate batch key %d: %w", c.KeyID, ErrBatchKeyExists)}
	}
	if prev, ok := s.batchKeys[s.batchPrimary]; ok {
		retired := prev.clone()
		retired.RetiredAt = c.Now
		s.batchKeys[retired.ID] = &retired
	}
	s.batchKeys[c.KeyID] = &BatchKey{ID: c.KeyID, Key: slices.Clone(c.Key), CreatedAt: c.Now}
	s.batchPrimary = c.KeyID
	return Result{}
}

func applyPruneBatchKeys(s *state, c PruneBatchKeys) Result {
	n := 0
	// Deleting during range is safe in Go; the set removed does not depend
	// on iteration order.
	for id, k := range s.batchKeys {
		if id != s.batchPrimary && k.RetiredAt < c.Before {
			delete(s.batchKeys, id)
			n++
		}
	}
	return Result{Pruned: n}
}

// BatchKeys implements Reader.
func (f *FSM) BatchKeys() (uint32, map[uint32][]byte) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	keys := make(map[uint32][]byte, len(f.st.batchKeys))
	for id, k := range f.st.batchKeys {
		keys[id] = slices.Clone(k.Key)
	}
	return f.st.batchPrimary, keys
}

// BatchKey implements Reader.
func (f *FSM) BatchKey(id uint32) ([]byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	k, ok := f.st.batchKeys[id]
	if !ok {
		return nil, false
	}
	return slices.Clone(k.Key), true
}

// PrimaryBatchKey implements Reader.
func (f *FSM) PrimaryBatchKey() (uint32, []byte, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	k, ok := f.st.batchKeys[f.st.batchPrimary]
	if !ok {
		return 0, nil, false
	}
	return k.ID, slices.Clone(k.Key), true
}

// BatchKeyring returns every key of the batch-token keyring with its
// timestamps, sorted by ID (copies). For operators and pruning decisions.
func (f *FSM) BatchKeyring() []BatchKey {
	f.mu.RLock()
	out := make([]BatchKey, 0, len(f.st.batchKeys))
	for _, k := range f.st.batchKeys {
		out = append(out, k.clone())
	}
	f.mu.RUnlock()
	slices.SortFunc(out, func(a, b BatchKey) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
