package metering

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestParseCredits(t *testing.T) {
	t.Parallel()
	ok := map[string]Credits{
		"0": 0, "1": 1_000_000, "12.5": 12_500_000, "-200": -200_000_000,
		"0.000001": 1, "-0.000001": -1, "1000": 1_000_000_000, "1e3": 1_000_000_000,
		"1.5E2": 150_000_000, "2.500000": 2_500_000, "1e-6": 1, ".5": 500_000,
		"9007199254.740991": MaxCredits, "00012": 12_000_000, "+3": 3_000_000,
	}
	for in, want := range ok {
		got, err := ParseCredits(in)
		if err != nil || got != want {
			t.Errorf("ParseCredits(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	bad := map[string]error{
		"": ErrCreditsSyntax, "0.0000001": ErrCreditsSyntax, "1e-7": ErrCreditsSyntax,
		"abc": ErrCreditsSyntax, "1.2.3": ErrCreditsSyntax, "-": ErrCreditsSyntax, ".": ErrCreditsSyntax,
		"NaN": ErrCreditsSyntax, "1e400": ErrCreditsSyntax, "9007199254.740992": ErrCreditsRange,
		"1e20": ErrCreditsRange, "99999999999999999999": ErrCreditsRange,
	}
	for in, want := range bad {
		if got, err := ParseCredits(in); !errors.Is(err, want) {
			t.Errorf("ParseCredits(%q) = %d, %v; want error %v", in, got, err, want)
		}
	}
}

// Formatting then parsing must give back the same number of micro-credits.
func TestCreditsRoundTrip(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		c := Credits(r.Int64N(int64(MaxCredits))) - MaxCredits/2
		got, err := ParseCredits(c.String())
		if err != nil || got != c {
			t.Fatalf("round trip of %d via %q gave %d, %v", c, c.String(), got, err)
		}
	}
	if s := Credits(12_500_000).String(); s != "12.5" {
		t.Fatalf("String = %q", s)
	}
}

func TestCreditsJSON(t *testing.T) {
	t.Parallel()
	var v struct{ A, B Credits }
	if err := json.Unmarshal([]byte(`{"A": 0.1, "B": -7}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 100_000 || v.B != -7_000_000 {
		t.Fatalf("got %+v", v)
	}
	out, _ := json.Marshal(v)
	if string(out) != `{"A":0.1,"B":-7}` {
		t.Fatalf("marshal gave %s", out)
	}
	if err := json.Unmarshal([]byte(`{"A": 0.1234567}`), &v); err == nil {
		t.Fatal("7 fractional digits accepted")
	}
}
