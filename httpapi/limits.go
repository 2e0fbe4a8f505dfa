package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits on hostile input (RELIABILITY.md S3/S4). The request body limit
// itself is Options.MaxRequestBytes (-max-request-size).
const (
	// maxJSONDepth bounds the nesting of a JSON body. Every declared field
	// is at most two levels deep (meta: {"k":"v"}); policies arrive as a
	// string. 32 leaves room and keeps a 10k-deep body a cheap 400.
	maxJSONDepth = 32
	// maxJSONKeyBytes bounds one object key: field names are short; a 60 KiB
	// key is an attack on the unknown-parameter warning.
	maxJSONKeyBytes = 256
	// maxJSONValues bounds the values (strings, numbers, lists, objects …)
	// of one body, whatever their nesting, as Vault's listener caps array
	// elements and object entries (CVE-2025-6203): a request of a million
	// empty strings is refused after the first 10,000, before it costs
	// memory. A real request has a few dozen.
	maxJSONValues = 10000
)

// ServerLimits are the http.Server settings that keep slow and oversized
// clients from holding connections or memory (CVE-2023-6337 class).
type ServerLimits struct {
	// ReadHeaderTimeout closes a connection whose request headers have not
	// all arrived in time (slowloris).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included (a body
	// trickled in byte by byte).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing the answer to a client that does not read.
	WriteTimeout time.Duration
	// IdleTimeout closes an idle keep-alive connection.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line plus headers; more → 431.
	MaxHeaderBytes int
}

// DefaultServerLimits are tokend's HTTP server limits. ReadHeaderTimeout is
// Vault's listener default (10 s). A write waits a few seconds for a leader
// at most and forwarding is bounded by the cluster's own timeouts, so
// WriteTimeout only catches a stuck client. 64 KiB of headers fit a 10 KiB
// token several times over and refuse 10,000 headers.
var DefaultServerLimits = ServerLimits{
	ReadHeaderTimeout: 10 * time.Second,
	ReadTimeout:       30 * time.Second,
	WriteTimeout:      60 * time.Second,
	IdleTimeout:       2 * time.Minute,
	MaxHeaderBytes:    64 << 10,
}

// Apply sets the limits on srv.
func (l ServerLimits) Apply(srv *http.Server) {
	srv.ReadHeaderTimeout = l.ReadHeaderTimeout
	srv.ReadTimeout = l.ReadTimeout
	srv.WriteTimeout = l.WriteTimeout
	srv.IdleTimeout = l.IdleTimeout
	srv.MaxHeaderBytes = l.MaxHeaderBytes
}

// readBody reads the request body up to the limit. The limit is enforced
// on the underlying ResponseWriter so that net/http closes the connection
// after the 413 instead of draining an endless body.
func (s *server) readBody(c *call) ([]byte, error) {
	if c.r.ContentLength > s.opts.MaxRequestBytes {
		// Refuse a body announced too large after one byte (a zero limit
		// still marks the connection to be closed after the answer).
		_, err := io.ReadAll(http.MaxBytesReader(c.w.ResponseWriter, c.r.Body, 0))
		if err == nil {
			err = &http.MaxBytesError{Limit: s.opts.MaxRequestBytes}
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			mbe.Limit = s.opts.MaxRequestBytes
		}
		return nil, err
	}
	return io.ReadAll(http.MaxBytesReader(c.w.ResponseWriter, c.r.Body, s.opts.MaxRequestBytes))
}

var (
	errJSONDepth  = errors.New("JSON body nested too deeply")
	errJSONUTF8   = errors.New("request body is not valid UTF-8")
	errJSONNUL    = errors.New("JSON body contains a NUL character")
	errJSONKeyLen = errors.New("JSON body has an object key that is too long")
	errJSONValues = errors.New("JSON body has too many values")
)

// decodeJSONStrict parses one JSON value from b (already trimmed, non-empty)
// more strictly than encoding/json: invalid UTF-8, NUL characters (raw or
// \u0000), duplicate object keys, nesting beyond maxJSONDepth and anything
// after the value are all errors, so that what a client meant is never
// ambiguous. Numbers stay json.Number.
func decodeJSONStrict(b []byte) (any, error) {
	if !utf8.Valid(b) {
		return nil, errJSONUTF8
	}
	if bytes.IndexByte(b, 0) >= 0 {
		return nil, errJSONNUL
	}
	if v, ok := fastJSON(b); ok {
		return v, nil
	}
	return decodeJSONTokens(b)
}

// decodeJSONTokens is decodeJSONStrict after its byte checks, with
// encoding/json's token API: the reference for fastJSON, and what gives
// every malformed body its error message.
func decodeJSONTokens(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	n := 0
	v, err := decodeJSONValue(dec, 0, &n)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid character after top-level value")
	}
	return v, nil
}

// decodeJSONValue reads the next value; depth is the nesting so far and
// *n counts the values read.
func decodeJSONValue(dec *json.Decoder, depth int, n *int) (any, error) {
	if *n++; *n > maxJSONValues {
		return nil, errJSONValues
	}
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxJSONDepth {
			return nil, errJSONDepth
		}
		switch t {
		case '{':
			obj := map[string]any{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("invalid JSON object key")
				}
				if len(k) > maxJSONKeyBytes {
					return nil, errJSONKeyLen
				}
				if strings.IndexByte(k, 0) >= 0 {
					return nil, errJSONNUL
				}
				if _, dup := obj[k]; dup {
					return nil, errors.New("duplicate key in JSON object: " + quoteKey(k))
				}
				v, err := decodeJSONValue(dec, depth+1, n)
				if err != nil {
					return nil, err
				}
				obj[k] = v
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return obj, nil
		case '[':
			arr := []any{}
			for dec.More() {
				v, err := decodeJSONValue(dec, depth+1, n)
				if err != nil {
					return nil, err
				}
				arr = append(arr, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return arr, nil
		}
		return nil, errors.New("invalid JSON delimiter")
	case string:
		if strings.IndexByte(t, 0) >= 0 {
			return nil, errJSONNUL
		}
		return t, nil
	default: // json.Number, bool, nil
		return t, nil
	}
}

// quoteKey renders a key for an error message, shortened.
func quoteKey(k string) string {
	if len(k) > 64 {
		k = k[:64] + "…"
	}
	b, _ := json.Marshal(k)
	return string(b)
}

// cleanText reports whether every string is valid UTF-8 without NUL.
func cleanText(ss ...string) bool {
	for _, s := range ss {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			return false
		}
	}
	return true
}
