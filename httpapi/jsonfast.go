package httpapi

import (
	"encoding/json"
	"unicode/utf8"
)

// fastJSON parses the common case of decodeJSONStrict without encoding/json's
// token API (json.Decoder.Token allocates per token and was the largest part
// of decoding a create's body). It accepts only input decodeJSONStrict
// accepts and returns the same value; on anything else — a syntax error, a
// limit, a duplicate key, NUL, an escaped surrogate — it reports false and
// the caller runs decodeJSONStrict, so every error and its message stay
// those of the strict decoder. FuzzFastJSON checks the equivalence.
func fastJSON(b []byte) (any, bool) {
	p := fastParser{b: b}
	v, ok := p.value(0)
	if !ok {
		return nil, false
	}
	p.space()
	return v, p.i == len(p.b)
}

type fastParser struct {
	b []byte
	i int
	n int // values read, as decodeJSONValue counts them
}

func (p *fastParser) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// skip consumes c after optional space, reporting whether it was there.
func (p *fastParser) skip(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// next consumes what follows a member of an object or array: ',' (more
// members) or closer (end). ok is false on anything else.
func (p *fastParser) next(closer byte) (end, ok bool) {
	if p.skip(',') {
		return false, true
	}
	if p.i < len(p.b) && p.b[p.i] == closer {
		p.i++
		return true, true
	}
	return false, false
}

func (p *fastParser) value(depth int) (any, bool) {
	if p.n++; p.n > maxJSONValues {
		return nil, false
	}
	p.space()
	if p.i >= len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '{':
		if depth >= maxJSONDepth {
			return nil, false
		}
		p.i++
		obj := map[string]any{}
		if p.skip('}') {
			return obj, true
		}
		for {
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return nil, false
			}
			k, ok := p.str()
			if !ok || len(k) > maxJSONKeyBytes {
				return nil, false
			}
			if _, dup := obj[k]; dup {
				return nil, false
			}
			p.space()
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, false
			}
			p.i++
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			obj[k] = v
			switch end, ok := p.next('}'); {
			case !ok:
				return nil, false
			case end:
				return obj, true
			}
		}
	case c == '[':
		if depth >= maxJSONDepth {
			return nil, false
		}
		p.i++
		arr := []any{}
		if p.skip(']') {
			return arr, true
		}
		for {
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			arr = append(arr, v)
			switch end, ok := p.next(']'); {
			case !ok:
				return nil, false
			case end:
				return arr, true
			}
		}
	case c == '"':
		s, ok := p.str()
		return s, ok
	case c == 't':
		return true, p.literal("true")
	case c == 'f':
		return false, p.literal("false")
	case c == 'n':
		return nil, p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	}
	return nil, false
}

func (p *fastParser) literal(word string) bool {
	// A comparison with a converted []byte does not allocate.
	if len(p.b)-p.i < len(word) || string(p.b[p.i:p.i+len(word)]) != word {
		return false
	}
	p.i += len(word)
	return true
}

// number reads a JSON number (RFC 8259 grammar) as json.Number, the literal
// text, as decodeJSONStrict's UseNumber does.
func (p *fastParser) number() (any, bool) {
	start := p.i
	if p.b[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.b) && p.b[p.i] == '0':
		p.i++
	case p.i < len(p.b) && p.b[p.i] >= '1' && p.b[p.i] <= '9':
		p.digits()
	default:
		return nil, false
	}
	if p.i < len(p.b) && p.b[p.i] == '.' {
		p.i++
		if !p.digits() {
			return nil, false
		}
	}
	if p.i < len(p.b) && (p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		p.i++
		if p.i < len(p.b) && (p.b[p.i] == '+' || p.b[p.i] == '-') {
			p.i++
		}
		if !p.digits() {
			return nil, false
		}
	}
	return json.Number(p.b[start:p.i]), true
}

// digits reads one or more decimal digits.
func (p *fastParser) digits() bool {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i > start
}

// str reads a string at p.b[p.i] == '"'. It gives up (false) on a raw
// control character, invalid UTF-8, a NUL (raw or escaped) and an escaped
// surrogate (encoding/json's replacement rules for those are left to it).
func (p *fastParser) str() (string, bool) {
	p.i++
	start := p.i
	// The common case: no escape, one allocation for the result.
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if !utf8.Valid(s) {
				return "", false
			}
			return string(s), true
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", false
		}
		p.i++
	}
	return "", false
}

// escaped finishes a string that has an escape at p.i; start is where its
// content began.
func (p *fastParser) escaped(start int) (string, bool) {
	out := make([]byte, 0, p.i-start+16)
	out = append(out, p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if !utf8.Valid(out) {
				return "", false
			}
			return string(out), true
		case c < 0x20:
			return "", false
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return "", false
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if p.i+4 > len(p.b) {
				return "", false
			}
			r := rune(0)
			for _, h := range p.b[p.i : p.i+4] {
				var d byte
				switch {
				case h >= '0' && h <= '9':
					d = h - '0'
				case h >= 'a' && h <= 'f':
					d = h - 'a' + 10
				case h >= 'A' && h <= 'F':
					d = h - 'A' + 10
				default:
					return "", false
				}
				r = r<<4 | rune(d)
			}
			p.i += 4
			if r == 0 || (r >= 0xD800 && r <= 0xDFFF) {
				return "", false
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", false
		}
	}
	return "", false
}
