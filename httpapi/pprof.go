package httpapi

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"
)

// Vault's profiling endpoints (sys/pprof/…): the Go runtime's profiles in
// the standard pprof formats, as net/http/pprof serves them. They are
// root-protected (rootPaths: the root policy or sudo on sys/pprof/…), and
// Local: this process's profiles, answered by the node that received the
// request, never forwarded.
//
// net/http/pprof itself is not imported: its init registers unauthenticated
// handlers on http.DefaultServeMux.

// Bounds of the seconds parameter.
const (
	// maxProfileSeconds bounds a CPU profile. The adapter extends the
	// connection's write deadline by the duration, so the server's
	// WriteTimeout does not cut a long profile off.
	maxProfileSeconds = 300
	// maxTraceSeconds bounds an execution trace, which is buffered in
	// memory until it ends (traces of a busy server grow by megabytes per
	// second).
	maxTraceSeconds = 60
	// Defaults, as net/http/pprof's.
	defaultProfileSeconds = 30
	defaultTraceSeconds   = 1
)

// pprofProfiles are the runtime/pprof profiles served by name, with the
// index's descriptions.
var pprofProfiles = []struct{ name, desc string }{
	{"allocs", "A sampling of all past memory allocations"},
	{"block", "Stack traces that led to blocking on synchronization primitives (empty unless the block profile rate is set)"},
	{"goroutine", "Stack traces of all current goroutines (debug=2: in the format of an unrecovered panic)"},
	{"heap", "A sampling of memory allocations of live objects (gc=1: run a garbage collection first)"},
	{"mutex", "Stack traces of holders of contended mutexes (empty unless the mutex profile fraction is set)"},
	{"threadcreate", "Stack traces that led to the creation of new OS threads"},
}

// pprofRoutes is the route table of sys/pprof.
func (s *server) pprofRoutes() []*Route {
	local := func(path string, h Handler, summary, desc string, fields Fields) *Route {
		return &Route{
			Path: "/v1/sys/pprof" + path, Bare: true, Local: true, MountType: "system",
			Fields: fields, Ops: Ops{"GET": {Handler: h, Kind: Read, Summary: summary}}, Description: desc,
		}
	}
	debugField := &Field{Type: Int, Default: int64(0), Description: "0: the binary pprof format; 1 or more: legacy text"}
	routes := []*Route{
		local("/", s.pprofIndex, "HTML index of the profiles", "Root or sudo on sys/pprof/*. Answered by the receiving node, never forwarded.", nil),
		local("/profile", s.pprofCPU, "CPU profile (binary pprof format)",
			fmt.Sprintf("Profiles for `seconds` (default %d, 1–%d; anything else is 400). One CPU profile or trace at a time per node.", defaultProfileSeconds, maxProfileSeconds),
			Fields{"seconds": {Type: Int, Default: int64(defaultProfileSeconds), Description: "Duration of the profile in seconds"}}),
		local("/trace", s.pprofTrace, "Execution trace (go tool trace)",
			fmt.Sprintf("Traces for `seconds` (default %d, 1–%d; anything else is 400).", defaultTraceSeconds, maxTraceSeconds),
			Fields{"seconds": {Type: Int, Default: int64(defaultTraceSeconds), Description: "Duration of the trace in seconds"}}),
		local("/cmdline", s.pprofCmdline, "The command line, arguments separated by NUL bytes", "", nil),
		local("/symbol", s.pprofSymbol, "Program counters to function names",
			"`GET` without a query answers `num_symbols: 1`; with `?0x…+0x…` one line per address. (POST symbolization is not served.)", nil),
	}
	for _, p := range pprofProfiles {
		fields := Fields{"debug": debugField, "seconds": {Type: Int, Description: "Not supported (delta profiles): 400"}}
		if p.name == "heap" {
			fields["gc"] = &Field{Type: Int, Default: int64(0), Description: "Greater than 0: run a garbage collection first"}
		}
		routes = append(routes, local("/"+p.name, s.pprofNamed(p.name), p.desc, "", fields))
	}
	return routes
}

// pprofAnswer is a Bare answer with a non-JSON body.
func pprofAnswer(body []byte, contentType, attachment string) *Response {
	r := &Response{Body: body, ContentType: contentType}
	if attachment != "" {
		r.Headers = http.Header{"Content-Disposition": {`attachment; filename="` + attachment + `"`}}
	}
	return r
}

const (
	binaryType = "application/octet-stream"
	textType   = "text/plain; charset=utf-8"
)

func (s *server) pprofIndex(_ context.Context, _ *Request) (*Response, error) {
	var b bytes.Buffer
	b.WriteString("<html>\n<head><title>/v1/sys/pprof/</title></head>\n<body>\n/v1/sys/pprof/<br>\n<br>\nTypes of profiles available:\n<table>\n<thead><td>Count</td><td>Profile</td></thead>\n")
	for _, p := range pprofProfiles {
		count := 0
		if prof := pprof.Lookup(p.name); prof != nil {
			count = prof.Count()
		}
		fmt.Fprintf(&b, "<tr><td>%d</td><td><a href=\"%s?debug=1\">%s</a></td></tr>\n", count, p.name, p.name)
	}
	b.WriteString("<tr><td></td><td><a href=\"goroutine?debug=2\">full goroutine stack dump</a></td></tr>\n</table>\n<br>\nProfile Descriptions:\n<ul>\n")
	for _, p := range pprofProfiles {
		fmt.Fprintf(&b, "<li><div class=profile-name>%s: </div> %s</li>\n", p.name, html.EscapeString(p.desc))
	}
	fmt.Fprintf(&b, "<li><div class=profile-name>profile: </div> CPU profile; ?seconds=N (default %d, at most %d)</li>\n", defaultProfileSeconds, maxProfileSeconds)
	fmt.Fprintf(&b, "<li><div class=profile-name>trace: </div> Execution trace; ?seconds=N (default %d, at most %d)</li>\n", defaultTraceSeconds, maxTraceSeconds)
	b.WriteString("</ul>\n</body>\n</html>\n")
	return pprofAnswer(b.Bytes(), "text/html; charset=utf-8", ""), nil
}

// pprofSeconds is the request's validated seconds parameter.
func pprofSeconds(r *Request, limit int64) (time.Duration, error) {
	sec := r.Data.Int("seconds")
	if sec < 1 || sec > limit {
		return 0, badRequest(fmt.Sprintf("seconds must be between 1 and %d", limit))
	}
	return time.Duration(sec) * time.Second, nil
}

// pprofWait waits d or until the request ends.
func pprofWait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *server) pprofCPU(ctx context.Context, r *Request) (*Response, error) {
	d, err := pprofSeconds(r, maxProfileSeconds)
	if err != nil {
		return nil, err
	}
	r.extendWrite(d)
	var b bytes.Buffer
	if err := pprof.StartCPUProfile(&b); err != nil {
		return nil, newError(http.StatusInternalServerError, "could not enable CPU profiling: "+err.Error())
	}
	err = pprofWait(ctx, d)
	pprof.StopCPUProfile()
	if err != nil {
		return nil, err
	}
	return pprofAnswer(b.Bytes(), binaryType, "profile"), nil
}

func (s *server) pprofTrace(ctx context.Context, r *Request) (*Response, error) {
	d, err := pprofSeconds(r, maxTraceSeconds)
	if err != nil {
		return nil, err
	}
	r.extendWrite(d)
	var b bytes.Buffer
	if err := trace.Start(&b); err != nil {
		return nil, newError(http.StatusInternalServerError, "could not enable tracing: "+err.Error())
	}
	err = pprofWait(ctx, d)
	trace.Stop()
	if err != nil {
		return nil, err
	}
	return pprofAnswer(b.Bytes(), binaryType, "trace"), nil
}

// pprofNamed serves one runtime/pprof profile.
func (s *server) pprofNamed(name string) Handler {
	return func(_ context.Context, r *Request) (*Response, error) {
		if r.Data.Has("seconds") {
			return nil, badRequest("seconds is not supported for the " + name + " profile")
		}
		debug := r.Data.Int("debug")
		if debug < 0 || debug > 2 {
			return nil, badRequest("debug must be 0, 1 or 2")
		}
		if name == "heap" && r.Data.Int("gc") > 0 {
			runtime.GC()
		}
		prof := pprof.Lookup(name)
		if prof == nil {
			return nil, newError(http.StatusNotFound, "unknown profile")
		}
		var b bytes.Buffer
		if err := prof.WriteTo(&b, int(debug)); err != nil {
			return nil, err
		}
		if debug > 0 {
			return pprofAnswer(b.Bytes(), textType, ""), nil
		}
		return pprofAnswer(b.Bytes(), binaryType, name), nil
	}
}

func (s *server) pprofCmdline(_ context.Context, _ *Request) (*Response, error) {
	return pprofAnswer([]byte(strings.Join(os.Args, "\x00")), textType, ""), nil
}

// pprofSymbol maps the program counters of the raw query ("0x1+0x2") to
// function names, as net/http/pprof's GET does.
func (s *server) pprofSymbol(_ context.Context, r *Request) (*Response, error) {
	var b bytes.Buffer
	b.WriteString("num_symbols: 1\n")
	for _, word := range strings.Split(r.HTTP.URL.RawQuery, "+") {
		pc, err := strconv.ParseUint(word, 0, 64)
		if err != nil || pc == 0 {
			continue
		}
		if f := runtime.FuncForPC(uintptr(pc)); f != nil {
			fmt.Fprintf(&b, "%#x %s\n", pc, f.Name())
		}
	}
	return pprofAnswer(b.Bytes(), textType, ""), nil
}
