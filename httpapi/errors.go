package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

// Error strings Vault clients see (VAULT-API.md §0.5).
const (
	msgPermissionDenied  = "permission denied"
	msgInvalidToken      = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
	msgACLDenied         = "1 error occurred:\n\t* permission denied\n\n"
	msgUnsupportedPath   = "1 error occurred:\n\t* unsupported path\n\n"
	msgUnsupportedOp     = "1 error occurred:\n\t* unsupported operation\n\n"
	msgMissingState      = "required index state not present"
	msgWriteEndingSlash  = "cannot write to a path ending in '/'"
	msgAlreadyInit       = "Vault is already initialized"
	msgRestrictedUse     = "restricted use token cannot generate child tokens"
	msgBadToken          = "bad token"
	msgTokenNotFound     = "token not found"
	msgMissingTokenID    = "missing token ID"
	msgNoAccessorToken   = "No token found with this accessor"
	msgRevokeNotFound    = "token to revoke not found"
	msgUnrecognizedParam = "Endpoint ignored these unrecognized parameters: "
)

// multiError renders one message the way go-multierror does, as Vault
// returns errors that passed through its request handler.
func multiError(msg string) string {
	return "1 error occurred:\n\t* " + msg + "\n\n"
}

// apiError is an error with the HTTP status and the exact text to send.
// An empty Msg renders as {"errors":[]}.
type apiError struct {
	Status int
	Msg    string
	// RetryAfter adds "Retry-After: 1" (unavailable, try again).
	RetryAfter bool
	// HopRefused adds HopRefusedHeader (see status.ErrHopRefused).
	HopRefused bool
}

func (e *apiError) Error() string { return e.Msg }

func newError(status int, msg string) error { return &apiError{Status: status, Msg: msg} }

func badRequest(msg string) error { return &apiError{Status: http.StatusBadRequest, Msg: msg} }

func unavailable(msg string) error {
	return &apiError{Status: http.StatusServiceUnavailable, Msg: msg, RetryAfter: true}
}

// errorResponse is the single place that maps an error to a status code and
// the text of {"errors":[…]}: typed API errors as they are, cluster errors to
// 503, fsm sentinels to Vault's generic wording, anything else to 500.
func errorResponse(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, status.ErrHopRefused):
		return &apiError{Status: http.StatusServiceUnavailable, Msg: err.Error(), RetryAfter: true, HopRefused: true}
	case errors.As(err, &mbe):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Msg: "http: request body too large"}
	case errors.Is(err, status.ErrNotLeader), errors.Is(err, status.ErrNoLeader),
		errors.Is(err, status.ErrStale), errors.Is(err, status.ErrTimeout),
		errors.Is(err, status.ErrShuttingDown), errors.Is(err, status.ErrLeaderLost),
		errors.Is(err, status.ErrLeaderChanged):
		return &apiError{Status: http.StatusServiceUnavailable, Msg: err.Error(), RetryAfter: true}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &apiError{Status: http.StatusServiceUnavailable, Msg: "request timed out: " + err.Error(), RetryAfter: true}
	case errors.Is(err, fsm.ErrTokenNotFound):
		return &apiError{Status: http.StatusBadRequest, Msg: msgTokenNotFound}
	case errors.Is(err, fsm.ErrParentNotFound):
		return &apiError{Status: http.StatusBadRequest, Msg: "parent token lookup failed: no parent found"}
	case errors.Is(err, fsm.ErrTokenExists):
		return &apiError{Status: http.StatusBadRequest, Msg: "cannot create a token with a duplicate ID"}
	case errors.Is(err, fsm.ErrAlreadyInitialized):
		return &apiError{Status: http.StatusBadRequest, Msg: msgAlreadyInit}
	case errors.Is(err, fsm.ErrNotRenewable):
		return &apiError{Status: http.StatusBadRequest, Msg: fsm.ErrNotRenewable.Error()}
	case errors.Is(err, fsm.ErrLeaseExpired):
		return &apiError{Status: http.StatusBadRequest, Msg: fsm.ErrLeaseExpired.Error()}
	case errors.Is(err, fsm.ErrInvalidLease):
		return &apiError{Status: http.StatusBadRequest, Msg: fsm.ErrInvalidLease.Error()}
	case errors.Is(err, fsm.ErrPastMaxTTL):
		// Vault answers 500 here (an error from the TTL calculation).
		return &apiError{Status: http.StatusInternalServerError, Msg: fsm.ErrPastMaxTTL.Error()}
	case errors.Is(err, fsm.ErrInvalidMaxTTL):
		return &apiError{Status: http.StatusBadRequest, Msg: fsm.ErrInvalidMaxTTL.Error()}
	case errors.Is(err, fsm.ErrInvalidCommand):
		return &apiError{Status: http.StatusBadRequest, Msg: "invalid request"}
	}
	return &apiError{Status: http.StatusInternalServerError, Msg: "internal error"}
}
