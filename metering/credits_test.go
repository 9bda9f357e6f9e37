package metering

import (
	"encoding/json"
	"errors"
	"math/big"
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

// FuzzParseCredits: any text either parses to exactly the decimal it
// spells (checked with math/big), within range, and formats back to the
// same amount, or is refused with one of the two errors. Never a panic.
func FuzzParseCredits(f *testing.F) {
	for _, s := range []string{"0", "12.5", "-200", "0.000001", "1e3", "1.5E2", ".5", "+3",
		"9007199254.740991", "9007199254.740992", "1e-7", "1e400", "NaN", "--1", "1.", "0x10", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCredits(s)
		if err != nil {
			if !errors.Is(err, ErrCreditsSyntax) && !errors.Is(err, ErrCreditsRange) {
				t.Fatalf("ParseCredits(%q): unexpected error %v", s, err)
			}
			return
		}
		if c < -MaxCredits || c > MaxCredits {
			t.Fatalf("ParseCredits(%q) = %d, out of range", s, c)
		}
		want, ok := new(big.Rat).SetString(s)
		if !ok {
			t.Fatalf("ParseCredits(%q) = %d, but it is not a number", s, c)
		}
		want.Mul(want, big.NewRat(int64(Micro), 1))
		if !want.IsInt() || want.Num().Int64() != int64(c) {
			t.Fatalf("ParseCredits(%q) = %d micro-credits, want %s", s, c, want.RatString())
		}
		back, err := ParseCredits(c.String())
		if err != nil || back != c {
			t.Fatalf("%d formats as %q, which parses to %d, %v", c, c.String(), back, err)
		}
	})
}
