package audit

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var validJSONSeeds = []string{
	``, ` `, `{}`, `[]`, `[ ]`, `{ }`, `null`, `true`, `false`, `nul`, `truex`, `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`,
	`1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e-3`, `"a"`, `"\u00e9"`, `"\u00g9"`, `"\x"`, `"\/"`, "\"\x01\"", "\"\xff\"",
	`"unterminated`, `"\"`, `"\\"`, `{"a":1}`, `{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":1,"b":[1,2,{"c":null}]}`,
	`[1,]`, `[,1]`, `[1 2]`, `{"a":1}}`, `[[]]]`, `[{]}`, `{"a":[}]`, `1 2`, ` {"a" : [ 1 , "x" ] } `, "\t[\n1\r]\n",
	`{"a":1}x`, `{"":""}`, `[1,{"a":{}}]`, `{"a"}`, `{"a":}`, `{,}`, `"\ud800"`, "[1]\x00",
	strings.Repeat("[", maxNestingDepth) + strings.Repeat("]", maxNestingDepth),
	strings.Repeat("[", maxNestingDepth+1) + strings.Repeat("]", maxNestingDepth+1),
	strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100),
}

func TestValidJSONMatchesEncodingJSON(t *testing.T) {
	for _, s := range validJSONSeeds {
		require.Equal(t, json.Valid([]byte(s)), validJSON([]byte(s)), "%.80q", s)
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, s := range validJSONSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		require.Equal(t, json.Valid(b), validJSON(b), "%q", b)
	})
}
