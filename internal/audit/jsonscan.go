package audit

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// The helpers in this file walk JSON that validJSON has already accepted, so
// they only need to find boundaries, not to report syntax errors.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// stringEnd returns the index just past the string that starts at b[i] == '"'.
func stringEnd(b []byte, i int) int {
	i++
	for {
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return len(b)
		}
		i += j
		// The quote is escaped if preceded by an odd number of backslashes.
		n := 0
		for k := i - 1; k >= 0 && b[k] == '\\'; k-- {
			n++
		}
		i++
		if n%2 == 0 {
			return i
		}
	}
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default: // number, true, false, null
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}

// eachMember calls fn with the raw key (quotes included) and the raw value of
// every member of the object at the start of obj; fn returns false to stop.
func eachMember(obj []byte, fn func(key, val []byte) bool) {
	i := skipSpace(obj, 0) + 1 // past '{'
	i = skipSpace(obj, i)
	if i >= len(obj) || obj[i] == '}' {
		return
	}
	for i < len(obj) {
		kEnd := stringEnd(obj, i)
		key := obj[i:kEnd]
		i = skipSpace(obj, kEnd) + 1 // past ':'
		i = skipSpace(obj, i)
		vEnd := valueEnd(obj, i)
		if !fn(key, obj[i:vEnd]) {
			return
		}
		i = skipSpace(obj, vEnd)
		if i >= len(obj) || obj[i] != ',' {
			return
		}
		i = skipSpace(obj, i+1)
	}
}

// eachElement calls fn with every element of the array at the start of arr.
func eachElement(arr []byte, fn func(val []byte)) {
	i := skipSpace(arr, 0) + 1 // past '['
	i = skipSpace(arr, i)
	if i >= len(arr) || arr[i] == ']' {
		return
	}
	for i < len(arr) {
		vEnd := valueEnd(arr, i)
		fn(arr[i:vEnd])
		i = skipSpace(arr, vEnd)
		if i >= len(arr) || arr[i] != ',' {
			return
		}
		i = skipSpace(arr, i+1)
	}
}

// escProblem is what escape scanning found.
type escProblem uint8

const (
	escOK escProblem = iota
	escNUL
	escSurrogate
)

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// decodeEscape decodes the escape at b[i] == '\\'. It returns the rune, the
// index past the escape (a surrogate pair counts as one escape) and a problem.
func decodeEscape(b []byte, i int) (rune, int, escProblem) {
	c := b[i+1]
	if c != 'u' {
		switch c {
		case 'b':
			return '\b', i + 2, escOK
		case 'f':
			return '\f', i + 2, escOK
		case 'n':
			return '\n', i + 2, escOK
		case 'r':
			return '\r', i + 2, escOK
		case 't':
			return '\t', i + 2, escOK
		}
		return rune(c), i + 2, escOK // " \ /
	}
	r := hex4(b[i+2:])
	i += 6
	switch {
	case r == 0:
		return 0, i, escNUL
	case r >= 0xDC00 && r <= 0xDFFF: // low surrogate without a high one
		return utf8.RuneError, i, escSurrogate
	case r >= 0xD800 && r <= 0xDBFF:
		if i+6 <= len(b) && b[i] == '\\' && b[i+1] == 'u' {
			if lo := hex4(b[i+2:]); lo >= 0xDC00 && lo <= 0xDFFF {
				return utf16.DecodeRune(r, lo), i + 6, escOK
			}
		}
		return utf8.RuneError, i, escSurrogate
	}
	return r, i, escOK
}

// scanEscapes reports the first problem among the escapes of a valid JSON
// value (any depth). In valid JSON a backslash only occurs inside strings and
// always starts an escape, so no string tracking is needed; "\\u0000" is an
// escaped backslash followed by literal text, not a NUL.
func scanEscapes(b []byte) escProblem {
	found := escOK
	for {
		j := bytes.IndexByte(b, '\\')
		if j < 0 {
			return found
		}
		_, next, p := decodeEscape(b, j)
		if p == escNUL {
			return escNUL // NUL is reported before a surrogate problem
		}
		if p != escOK {
			found = p
		}
		b = b[next:]
	}
}

// unquote decodes the content of a JSON string (without the quotes) that
// contains at least one escape.
func unquote(inner []byte) (string, escProblem) {
	out := make([]byte, 0, len(inner))
	found := escOK
	for {
		j := bytes.IndexByte(inner, '\\')
		if j < 0 {
			out = append(out, inner...)
			return string(out), found
		}
		out = append(out, inner[:j]...)
		r, next, p := decodeEscape(inner, j)
		if p == escNUL {
			return "", escNUL
		}
		if p != escOK {
			found = p
		}
		out = utf8.AppendRune(out, r)
		inner = inner[next:]
	}
}

// appendCompact appends src without insignificant whitespace, like
// json.Compact but without re-validating.
func appendCompact(dst, src []byte) []byte {
	clean := true
	for _, c := range src {
		if isSpace(c) {
			clean = false
			break
		}
	}
	if clean {
		return append(dst, src...)
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '"' {
			end := stringEnd(src, i)
			dst = append(dst, src[i:end]...)
			i = end - 1
			continue
		}
		if !isSpace(c) {
			dst = append(dst, c)
		}
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// with encoding/json; no HTML escaping.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
