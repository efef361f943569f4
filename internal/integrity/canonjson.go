package integrity

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of canonical JSON; audit accepts the same
// depth as encoding/json.
const maxDepth = 10000

// maxExponent bounds a number's decimal exponent. PostgreSQL's numeric,
// which jsonb stores numbers as, holds far less (about 1e131072 down to
// 1e-16383), so any number beyond is refused by the database anyway; the
// bound only keeps the arithmetic exact.
const maxExponent = 1 << 40

// ErrJSON is wrapped by every error of CanonicalJSON: the input is not
// JSON that PostgreSQL's jsonb could hold.
var ErrJSON = errors.New("not canonicalisable JSON")

// AppendCanonicalJSON appends the canonical form of the JSON value src to
// dst. It gives the same bytes for any two texts that jsonb stores as the
// same value, so the writer (which holds the client's JSON) and a verifier
// (which reads jsonb back) agree:
//
//   - no insignificant whitespace;
//   - object members sorted by their key's UTF-8 bytes; of a key given
//     twice the last value wins, as in jsonb;
//   - strings unescaped and re-escaped minimally: `"` as \", `\` as \\,
//     U+0008, U+0009, U+000A, U+000C, U+000D as \b \t \n \f \r, the other
//     characters below U+0020 as \u00XX (lowercase hex), everything else as
//     its UTF-8 bytes ("\/" becomes "/", "\u00e9" becomes "é");
//   - numbers by their exact decimal value, never through a float: "0" for
//     zero (also -0, 0.0, 0e7), else an optional "-", the significant
//     digits without leading or trailing zeros, and, unless it is 0, "e"
//     and the decimal exponent that makes the value exact: 100 and 1E+2
//     are "1e2", 1.0 and 1 are "1", 0.10 is "1e-1", -12.5 is "-125e-1".
//     jsonb keeps the value exactly but not its text (1e2 comes back as
//     100, 1.0 as 1.0), which is why the form derives from the value;
//   - true, false, null as they are.
//
// Invalid JSON, invalid UTF-8 (also an unpaired surrogate escape) and the
// NUL character, which jsonb cannot store, are errors wrapping ErrJSON.
func AppendCanonicalJSON(dst, src []byte) ([]byte, error) {
	p := parsers.Get().(*jsonParser)
	defer func() {
		p.src = nil
		parsers.Put(p)
	}()
	p.src, p.i = src, 0
	p.skipSpace()
	dst, err := p.value(dst, 0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.src) {
		return nil, p.fail("data after the value")
	}
	return dst, nil
}

type jsonParser struct {
	src []byte
	i   int
	// scratch holds decoded strings and member spans, reused across
	// objects so a document costs few allocations.
	scratch []byte
	// levels holds, per nesting depth, the members and arena of the
	// object being read there: objects at one depth are read one after
	// the other, so the next reuses them. With the parsers pooled, the
	// writer's chain (every event's event_data) allocates none of them
	// once warm.
	levels []objectScratch
}

type objectScratch struct {
	members []member
	arena   []byte
}

var parsers = sync.Pool{New: func() any { return new(jsonParser) }}

func (p *jsonParser) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrJSON, what, p.i)
}

func (p *jsonParser) skipSpace() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonParser) value(dst []byte, depth int) ([]byte, error) {
	if p.i >= len(p.src) {
		return nil, p.fail("unexpected end")
	}
	switch c := p.src[p.i]; {
	case c == '{':
		return p.object(dst, depth+1)
	case c == '[':
		return p.array(dst, depth+1)
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return appendString(dst, s), nil
	case c == '-' || c >= '0' && c <= '9':
		return p.number(dst)
	}
	for _, lit := range [...]string{"true", "false", "null"} {
		if len(p.src)-p.i >= len(lit) && string(p.src[p.i:p.i+len(lit)]) == lit {
			p.i += len(lit)
			return append(dst, lit...), nil
		}
	}
	return nil, p.fail("invalid value")
}

// member is one object member: its decoded key and its canonical value,
// as offsets into the object's arena (arena[key:val] the key,
// arena[val:end] the value).
type member struct {
	key, val, end int
}

func (p *jsonParser) object(dst []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, p.fail("nested too deeply")
	}
	p.i++ // {
	p.skipSpace()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		return append(dst, "{}"...), nil
	}
	if len(p.levels) <= depth {
		p.levels = append(p.levels, make([]objectScratch, depth+1-len(p.levels))...)
	}
	members, arena := p.levels[depth].members[:0], p.levels[depth].arena[:0]
	defer func() { p.levels[depth] = objectScratch{members: members, arena: arena} }()
	for {
		p.skipSpace()
		if p.i >= len(p.src) || p.src[p.i] != '"' {
			return nil, p.fail("expected a member name")
		}
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		m := member{key: len(arena)}
		arena = append(arena, key...)
		m.val = len(arena)
		p.skipSpace()
		if p.i >= len(p.src) || p.src[p.i] != ':' {
			return nil, p.fail("expected ':'")
		}
		p.i++
		p.skipSpace()
		if arena, err = p.value(arena, depth); err != nil {
			return nil, err
		}
		m.end = len(arena)
		members = append(members, m)
		p.skipSpace()
		if p.i >= len(p.src) {
			return nil, p.fail("unexpected end of object")
		}
		if p.src[p.i] == '}' {
			p.i++
			break
		}
		if p.src[p.i] != ',' {
			return nil, p.fail("expected ',' or '}'")
		}
		p.i++
	}
	keyOf := func(m member) []byte { return arena[m.key:m.val] }
	// Stable, so that of equal keys the later one stays later: the last
	// one is kept, as jsonb keeps it.
	slices.SortStableFunc(members, func(a, b member) int { return compareBytes(keyOf(a), keyOf(b)) })
	dst = append(dst, '{')
	first := true
	for j, m := range members {
		if j+1 < len(members) && string(keyOf(members[j+1])) == string(keyOf(m)) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendString(dst, keyOf(m))
		dst = append(dst, ':')
		dst = append(dst, arena[m.val:m.end]...)
	}
	return append(dst, '}'), nil
}

func compareBytes(a, b []byte) int {
	switch {
	case string(a) < string(b):
		return -1
	case string(a) > string(b):
		return 1
	}
	return 0
}

func (p *jsonParser) array(dst []byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, p.fail("nested too deeply")
	}
	p.i++ // [
	dst = append(dst, '[')
	p.skipSpace()
	if p.i < len(p.src) && p.src[p.i] == ']' {
		p.i++
		return append(dst, ']'), nil
	}
	for n := 0; ; n++ {
		if n > 0 {
			dst = append(dst, ',')
		}
		p.skipSpace()
		var err error
		if dst, err = p.value(dst, depth); err != nil {
			return nil, err
		}
		p.skipSpace()
		if p.i >= len(p.src) {
			return nil, p.fail("unexpected end of array")
		}
		if p.src[p.i] == ']' {
			p.i++
			return append(dst, ']'), nil
		}
		if p.src[p.i] != ',' {
			return nil, p.fail("expected ',' or ']'")
		}
		p.i++
	}
}

// str decodes the string at p.i into p.scratch and returns it; the result
// is valid until the next call.
func (p *jsonParser) str() ([]byte, error) {
	p.i++ // "
	// Most strings are printable ASCII without escapes: their decoded
	// bytes are their bytes in src, returned without a copy.
	start := p.i
	for p.i < len(p.src) {
		c := p.src[p.i]
		if c == '"' {
			p.i++
			return p.src[start : p.i-1], nil
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			break
		}
		p.i++
	}
	out := append(p.scratch[:0], p.src[start:p.i]...)
	for {
		if p.i >= len(p.src) {
			return nil, p.fail("unterminated string")
		}
		c := p.src[p.i]
		switch {
		case c == '"':
			p.i++
			p.scratch = out
			return out, nil
		case c == '\\':
			r, err := p.escape()
			if err != nil {
				return nil, err
			}
			out = utf8.AppendRune(out, r)
		case c < 0x20:
			return nil, p.fail("control character in a string")
		case c < utf8.RuneSelf:
			out = append(out, c)
			p.i++
		default:
			r, size := utf8.DecodeRune(p.src[p.i:])
			if r == utf8.RuneError && size <= 1 {
				return nil, p.fail("invalid UTF-8")
			}
			out = append(out, p.src[p.i:p.i+size]...)
			p.i += size
		}
	}
}

// escape decodes the escape sequence at p.i (a backslash), pairing UTF-16
// surrogates.
func (p *jsonParser) escape() (rune, error) {
	if p.i+1 >= len(p.src) {
		return 0, p.fail("unterminated escape")
	}
	c := p.src[p.i+1]
	p.i += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
	default:
		return 0, p.fail("invalid escape")
	}
	r, ok := p.hex4()
	if !ok {
		return 0, p.fail("invalid \\u escape")
	}
	switch {
	case r == 0:
		return 0, p.fail("NUL character (\\u0000), which jsonb cannot store")
	case utf16.IsSurrogate(r):
		if r >= 0xdc00 || p.i+1 >= len(p.src) || p.src[p.i] != '\\' || p.src[p.i+1] != 'u' {
			return 0, p.fail("unpaired surrogate escape")
		}
		p.i += 2
		lo, ok := p.hex4()
		if !ok || lo < 0xdc00 || lo > 0xdfff {
			return 0, p.fail("unpaired surrogate escape")
		}
		return utf16.DecodeRune(r, lo), nil
	}
	return r, nil
}

func (p *jsonParser) hex4() (rune, bool) {
	if p.i+4 > len(p.src) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(p.src[p.i:p.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(n), true
}

const hexDigits = "0123456789abcdef"

// appendString writes s, valid UTF-8 without NUL, as a canonical JSON
// string.
func appendString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for {
		// The bytes that stand for themselves, copied a run at a time.
		i := 0
		for i < len(s) && s[i] >= 0x20 && s[i] != '"' && s[i] != '\\' {
			i++
		}
		dst = append(dst, s[:i]...)
		if i == len(s) {
			return append(dst, '"')
		}
		switch c := s[i]; c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\r':
			dst = append(dst, '\\', 'r')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		s = s[i+1:]
	}
}

// number writes the number at p.i in canonical form (see
// AppendCanonicalJSON), from its digits alone.
func (p *jsonParser) number(dst []byte) ([]byte, error) {
	start := p.i
	neg := p.src[p.i] == '-'
	if neg {
		p.i++
	}
	digits := func() (int, int) {
		from := p.i
		for p.i < len(p.src) && p.src[p.i] >= '0' && p.src[p.i] <= '9' {
			p.i++
		}
		return from, p.i
	}
	intFrom, intTo := digits()
	if intTo == intFrom || p.src[intFrom] == '0' && intTo-intFrom > 1 {
		p.i = start
		return nil, p.fail("invalid number")
	}
	var fracFrom, fracTo int
	if p.i < len(p.src) && p.src[p.i] == '.' {
		p.i++
		fracFrom, fracTo = digits()
		if fracTo == fracFrom {
			return nil, p.fail("invalid number")
		}
	}
	var exp int64
	if p.i < len(p.src) && (p.src[p.i] == 'e' || p.src[p.i] == 'E') {
		p.i++
		expNeg := false
		if p.i < len(p.src) && (p.src[p.i] == '+' || p.src[p.i] == '-') {
			expNeg = p.src[p.i] == '-'
			p.i++
		}
		from, to := digits()
		if to == from {
			return nil, p.fail("invalid number")
		}
		for _, c := range p.src[from:to] {
			exp = exp*10 + int64(c-'0')
			if exp > maxExponent {
				return nil, p.fail("number out of range")
			}
		}
		if expNeg {
			exp = -exp
		}
	}
	// The significant digits are those of the integer and fraction parts
	// together, without leading and trailing zeros; value = digits ×
	// 10^exp.
	sig := make([]byte, 0, intTo-intFrom+fracTo-fracFrom)
	sig = append(sig, p.src[intFrom:intTo]...)
	sig = append(sig, p.src[fracFrom:fracTo]...)
	exp -= int64(fracTo - fracFrom)
	lead := 0
	for lead < len(sig) && sig[lead] == '0' {
		lead++
	}
	sig = sig[lead:]
	if len(sig) == 0 {
		return append(dst, '0'), nil
	}
	for sig[len(sig)-1] == '0' {
		sig = sig[:len(sig)-1]
		exp++
	}
	if neg {
		dst = append(dst, '-')
	}
	dst = append(dst, sig...)
	if exp != 0 {
		dst = strconv.AppendInt(append(dst, 'e'), exp, 10)
	}
	return dst, nil
}
