package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("audit log closed")

// FileMode is the mode of a new (or reopened) audit file: the log holds
// hashes only, but it is still nobody else's business.
const FileMode = 0o600

// Log is an audit device: it appends one JSON line per entry. It is safe for
// concurrent use (one mutex; see the package doc for the fsync policy).
type Log struct {
	mu     sync.Mutex
	w      io.Writer
	f      *os.File // nil for a Log over a plain writer
	path   string
	closed bool
}

// New returns a Log writing to w (tests; a failing w simulates a full disk).
func New(w io.Writer) *Log {
	return &Log{w: w}
}

// OpenFile opens (creating if needed, mode 0600) the audit file at path
// for appending.
func OpenFile(path string) (*Log, error) {
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	return &Log{w: f, f: f, path: path}, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, FileMode)
	if err != nil {
		return nil, fmt.Errorf("open audit file: %w", err)
	}
	// An existing file keeps its mode on open: tighten it.
	if fi, err := f.Stat(); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if err := f.Chmod(FileMode); err != nil {
			f.Close()
			return nil, fmt.Errorf("chmod audit file: %w", err)
		}
	}
	return f, nil
}

// Path is the file's path ("" for a Log over a plain writer).
func (l *Log) Path() string { return l.path }

// Write appends e as one JSON line. It returns an error when the line could
// not be written whole; the caller decides whether the request may proceed.
func (l *Log) Write(e *Entry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit entry: %w", err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	n, err := l.w.Write(b)
	if err == nil && n != len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("write audit entry: %w", err)
	}
	return nil
}

// Reopen closes and reopens the file at the same path (after log rotation
// moved it away, e.g. on SIGHUP). The old file is synced first. A Log over
// a plain writer has nothing to reopen. On error the old file stays in use.
func (l *Log) Reopen() error {
	if l.path == "" {
		return nil
	}
	f, err := openAppend(l.path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	if l.closed {
		l.mu.Unlock()
		f.Close()
		return ErrClosed
	}
	l.f, l.w = f, f
	l.mu.Unlock()
	return closeSynced(old)
}

// Close syncs and closes the file; later writes fail with ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.f == nil {
		return nil
	}
	return closeSynced(l.f)
}

func closeSynced(f *os.File) error {
	serr := f.Sync()
	cerr := f.Close()
	return errors.Join(serr, cerr)
}
