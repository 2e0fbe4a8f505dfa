package fsm

import "errors"

// Errors added after the api.go contract (additive).
var (
	// ErrUnknownType is returned (wrapped) by Decode for a command type that
	// is not registered, or a version of a registered type it cannot read.
	ErrUnknownType = errors.New("unknown command type")
	// ErrMalformedEntry is returned (wrapped) by Decode for an entry that is
	// too short or whose body does not decode.
	ErrMalformedEntry = errors.New("malformed command entry")
	// ErrInvalidMaxTTL is returned by CalculateTTL when the effective max TTL
	// is not positive (Vault: "max TTL must be greater than zero").
	ErrInvalidMaxTTL = errors.New("max TTL must be greater than zero")
	// ErrBadSnapshot is returned (wrapped) by Restore for a snapshot it
	// cannot or will not load; the state is left untouched.
	ErrBadSnapshot = errors.New("bad snapshot")
)
