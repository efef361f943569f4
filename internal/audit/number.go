package audit

import "bytes"

// PostgreSQL stores jsonb numbers as numeric, whose limits are narrower than
// JSON's: a number outside them is valid JSON that no row can hold, so it is
// a validation error here rather than a poisoned COPY in the writer.
const (
	// numericMaxWeight: numeric keeps at most 131072 digits before the
	// decimal point, so the most significant digit is at most 10^131071.
	numericMaxWeight = 131071
	// numericMaxScale: at most 16383 digits after the decimal point, counted
	// as written (the display scale: 1.50 has two), after the exponent.
	numericMaxScale = 16383
	// numericMaxExponent: numeric_in refuses an exponent of INT_MAX/2 or
	// more, even on zero, before it looks at the value.
	numericMaxExponent = 1<<30 - 1
)

// numbersFit reports whether every number in the valid JSON value v fits
// PostgreSQL's numeric (numberFits). Strings are skipped whole, so digits
// inside them are not numbers.
func numbersFit(v []byte) bool {
	for i := 0; i < len(v); {
		c := v[i]
		switch {
		case c == '"':
			i = stringEnd(v, i)
		case c == '-' || isDigit(c):
			j := i + 1
			for j < len(v) && (isDigit(v[j]) || v[j] == '.' || v[j] == 'e' || v[j] == 'E' || v[j] == '+' || v[j] == '-') {
				j++
			}
			if !numberFits(v[i:j]) {
				return false
			}
			i = j
		default:
			i++
		}
	}
	return true
}

// numberFits reports whether numeric can hold the valid JSON number num:
// its display scale (fraction digits minus the exponent) is at most
// numericMaxScale, its most significant non-zero digit at most
// 10^numericMaxWeight, and its exponent below numericMaxExponent.
func numberFits(num []byte) bool {
	// Without an exponent, a number this short is within every limit: the
	// common case costs one scan of a few bytes.
	if len(num) <= numericMaxScale && bytes.IndexAny(num, "eE") < 0 {
		return true
	}
	i := 0
	if num[0] == '-' {
		i++
	}
	start := i
	for i < len(num) && isDigit(num[i]) {
		i++
	}
	intDigits := num[start:i]
	var frac []byte
	if i < len(num) && num[i] == '.' {
		i++
		start = i
		for i < len(num) && isDigit(num[i]) {
			i++
		}
		frac = num[start:i]
	}
	var exp int64
	if i < len(num) {
		i++ // 'e' or 'E'
		neg := num[i] == '-'
		if num[i] == '-' || num[i] == '+' {
			i++
		}
		for ; i < len(num); i++ {
			if exp = exp*10 + int64(num[i]-'0'); exp >= numericMaxExponent {
				return false
			}
		}
		if neg {
			exp = -exp
		}
	}
	if int64(len(frac))-exp > numericMaxScale {
		return false
	}
	// The power of ten of the most significant non-zero digit; a zero has
	// none and fits whatever its exponent.
	if k := firstNonZero(intDigits); k >= 0 {
		return int64(len(intDigits)-1-k)+exp <= numericMaxWeight
	}
	if k := firstNonZero(frac); k >= 0 {
		return int64(-1-k)+exp <= numericMaxWeight
	}
	return true
}

func firstNonZero(digits []byte) int {
	for i, c := range digits {
		if c != '0' {
			return i
		}
	}
	return -1
}
