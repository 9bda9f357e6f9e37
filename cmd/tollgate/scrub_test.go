package main

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

func scrubAll(t *testing.T, in string, pieces []int) string {
	var out bytes.Buffer
	s := &keyScrubber{w: &out}
	for _, n := range pieces {
		n = min(n, len(in))
		_, err := s.Write([]byte(in[:n]))
		require.NoError(t, err)
		in = in[n:]
	}
	_, err := s.Write([]byte(in))
	require.NoError(t, err)
	require.NoError(t, s.Close())
	return out.String()
}

func TestKeyScrubber(t *testing.T) {
	key, err := metering.NewAPIKey()
	require.NoError(t, err)
	red := key[:7] + redacted
	for in, want := range map[string]string{
		"no key here\n":                          "no key here\n",
		`"X-Api-Key":["` + key + `"]` + "\n":     `"X-Api-Key":["` + red + `"]` + "\n",
		"Bearer " + key + " and " + key + "\n":   "Bearer " + red + " and " + red + "\n",
		"tg_short tg_ tg" + "\n":                 "tg_short tg_ tg\n",
		"x" + key + "more0123\n":                 "x" + red + "more0123\n",
		"uri=/v1/x?key=" + key + "&b=1\n":        "uri=/v1/x?key=" + red + "&b=1\n",
		"utf8 é " + key + " ü\n":                 "utf8 é " + red + " ü\n",
		"cut at the end: " + key[:30]:            "cut at the end: " + key[:7] + redacted,
		"ttg_" + strings.Repeat("a", 48) + " \n": "ttg_" + strings.Repeat("a", 48) + " \n",
	} {
		require.Equal(t, want, scrubAll(t, in, nil), in)
		// Whatever the write boundaries, the same output.
		for range 50 {
			var pieces []int
			for range 6 {
				pieces = append(pieces, rand.IntN(len(in)+1))
			}
			require.Equal(t, want, scrubAll(t, in, pieces), "%q in pieces %v", in, pieces)
		}
		for _, n := range []int{1, 2, 3, 51, 52} {
			pieces := make([]int, len(in))
			for i := range pieces {
				pieces[i] = n
			}
			require.Equal(t, want, scrubAll(t, in, pieces), "%q in pieces of %d", in, n)
		}
	}
}

// Nothing but the tail that could start a key is held back, so a log line
// is out as soon as it is written.
func TestKeyScrubberHoldsBackOnlyAKeyStart(t *testing.T) {
	var out bytes.Buffer
	s := &keyScrubber{w: &out}
	s.Write([]byte("line one\nline two tg_ab"))
	require.Equal(t, "line one\nline two ", out.String())
	s.Write([]byte("c is not a key\n"))
	require.Equal(t, "line one\nline two tg_abc is not a key\n", out.String())
	require.Empty(t, s.pending)
}

// Invite tokens travel in URL paths (/claim/<token>), which access logs
// print: they are redacted whole, however the output is cut into writes.
func TestKeyScrubberRedactsInviteTokens(t *testing.T) {
	token := "tgi_" + strings.Repeat("Ab9", 14) + "z" // 43 base62 characters
	key, err := metering.NewAPIKey()
	require.NoError(t, err)
	red := "tgi_" + redacted
	for in, want := range map[string]string{
		`"uri":"/claim/` + token + `"` + "\n":        `"uri":"/claim/` + red + `"` + "\n",
		token + " then " + key + "\n":                red + " then " + key[:7] + redacted + "\n",
		"x" + token + "more0123\n":                   "x" + red + "more0123\n",
		"tgi_short tgi_ tgi tg" + "\n":               "tgi_short tgi_ tgi tg\n",
		"cut at the end: " + token[:20]:              "cut at the end: " + red,
		"post " + `{"token":"` + token + `"}` + "\n": "post " + `{"token":"` + red + `"}` + "\n",
	} {
		require.Equal(t, want, scrubAll(t, in, nil), in)
		for range 50 {
			var pieces []int
			for range 6 {
				pieces = append(pieces, rand.IntN(len(in)+1))
			}
			require.Equal(t, want, scrubAll(t, in, pieces), "%q in pieces %v", in, pieces)
		}
		for _, n := range []int{1, 2, 3, 4, 46, 47} {
			pieces := make([]int, len(in))
			for i := range pieces {
				pieces[i] = n
			}
			require.Equal(t, want, scrubAll(t, in, pieces), "%q in pieces of %d", in, n)
		}
	}
	require.True(t, metering.WellFormedInviteToken(token), "the test's token has the real shape")

	// Only a possible token start is held back.
	var out bytes.Buffer
	s := &keyScrubber{w: &out}
	s.Write([]byte("line one\nopen /claim/tgi_ab"))
	require.Equal(t, "line one\nopen /claim/", out.String())
	s.Write([]byte("/ is no token\n"))
	require.Equal(t, "line one\nopen /claim/tgi_ab/ is no token\n", out.String())
	require.Empty(t, s.pending)
}
