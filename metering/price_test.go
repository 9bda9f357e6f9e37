package metering

import (
	"errors"
	"math"
	"math/big"
	"strings"
	"testing"
)

func TestPriceCost(t *testing.T) {
	t.Parallel()
	const M = Micro
	gpt := Price{Model: "gpt-4o", InputPerMillion: 2_500_000, OutputPerMillion: 10 * M}
	cases := []struct {
		name string
		p    Price
		u    Units
		want Credits
	}{
		{"zero price", Price{Model: "free"}, Units{InputTokens: 1e9, OutputTokens: 1e9, Images: 5}, 0},
		{"zero units", gpt, Units{}, 0},
		{"exact tokens", gpt, Units{InputTokens: 1_000_000, OutputTokens: 2_000_000}, 22_500_000},
		// 1 token at 2.5 credits per million is 2.5 micro-credits: rounded up to 3.
		{"one input token rounds up", gpt, Units{InputTokens: 1}, 3},
		// Input and output round separately: 3 + ceil(10) = 13.
		{"components round separately", gpt, Units{InputTokens: 1, OutputTokens: 1}, 13},
		{"tiny rate still costs", Price{InputPerMillion: 1}, Units{InputTokens: 1}, 1},
		{"per character", Price{PerCharacter: 15}, Units{Characters: 1000}, 15_000},
		{"per second whole", Price{PerSecond: 100}, Units{AudioMillis: 60_000}, 6_000},
		// 1 ms at 100 µcr/s is 0.1 µcr: rounds up to 1.
		{"per second rounds up", Price{PerSecond: 100}, Units{AudioMillis: 1}, 1},
		{"per second 1501ms", Price{PerSecond: 1000}, Units{AudioMillis: 1501}, 1501},
		{"per image", Price{PerImage: 40_000}, Units{Images: 3}, 120_000},
		{"per request with no units", Price{PerRequest: 7}, Units{}, 7},
		{"all components", Price{InputPerMillion: 1, OutputPerMillion: 1, PerCharacter: 1, PerSecond: 1,
			PerImage: 1, PerRequest: 1}, Units{1, 1, 1, 1, 1}, 6},
		{"negative units are zero", gpt, Units{InputTokens: -5, OutputTokens: -1 << 62}, 0},
		{"negative rate is zero", Price{InputPerMillion: -10 * M, PerRequest: 1}, Units{InputTokens: 1e6}, 1},
		{"saturates at max", Price{PerImage: MaxCredits}, Units{Images: 2}, MaxCredits},
		{"huge product saturates", Price{PerCharacter: math.MaxInt64}, Units{Characters: math.MaxInt64}, MaxCredits},
		{"huge tokens", Price{InputPerMillion: MaxCredits}, Units{InputTokens: math.MaxInt64}, MaxCredits},
		// 2^63-1 tokens at 1 µcr per million: ceil((2^63-1)/1e6), exactly representable.
		{"huge units small rate", Price{InputPerMillion: 1}, Units{InputTokens: math.MaxInt64}, 9_223_372_036_855},
		{"sum saturates", Price{PerImage: MaxCredits / 2, PerRequest: MaxCredits/2 + 10}, Units{Images: 1}, MaxCredits},
	}
	for _, c := range cases {
		if got := c.p.Cost(c.u); got != c.want {
			t.Errorf("%s: Cost = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestPriceValidate(t *testing.T) {
	t.Parallel()
	ok := []Price{
		{Model: "gpt-4o"}, {Model: "openai/gpt-4o-mini"}, {Model: "llama3:8b"}, {Model: "A.b_c-d"},
		{Model: strings.Repeat("m", 128), InputPerMillion: MaxPriceRate, PerRequest: MaxPriceRate},
	}
	for _, p := range ok {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", p, err)
		}
	}
	bad := []struct {
		p     Price
		field string
	}{
		{Price{Model: ""}, "model"},
		{Price{Model: "/gpt"}, "model"},
		{Price{Model: "gpt 4"}, "model"},
		{Price{Model: strings.Repeat("m", 129)}, "model"},
		{Price{Model: "m", InputPerMillion: -1}, "input_per_million"},
		{Price{Model: "m", OutputPerMillion: MaxPriceRate + 1}, "output_per_million"},
		{Price{Model: "m", PerCharacter: -1}, "per_character"},
		{Price{Model: "m", PerSecond: -1}, "per_second"},
		{Price{Model: "m", PerImage: -1}, "per_image"},
		{Price{Model: "m", PerRequest: math.MaxInt64}, "per_request"},
	}
	for _, c := range bad {
		var inv *InvalidError
		if err := c.p.Validate(); !errors.As(err, &inv) || inv.Field != c.field {
			t.Errorf("Validate(%+v) = %v, want an InvalidError on %s", c.p, err, c.field)
		}
	}
}

// bigCost is the definition of Cost in arbitrary precision.
func bigCost(p Price, u Units) Credits {
	sum := new(big.Int)
	add := func(rate Credits, units int64, div int64) {
		if rate <= 0 || units <= 0 {
			return
		}
		n := new(big.Int).Mul(big.NewInt(int64(rate)), big.NewInt(units))
		d := big.NewInt(div)
		q, r := new(big.Int).QuoRem(n, d, new(big.Int))
		if r.Sign() != 0 {
			q.Add(q, big.NewInt(1))
		}
		sum.Add(sum, q)
	}
	add(p.InputPerMillion, u.InputTokens, 1_000_000)
	add(p.OutputPerMillion, u.OutputTokens, 1_000_000)
	add(p.PerCharacter, u.Characters, 1)
	add(p.PerSecond, u.AudioMillis, 1000)
	add(p.PerImage, u.Images, 1)
	add(p.PerRequest, 1, 1)
	if sum.Cmp(big.NewInt(int64(MaxCredits))) > 0 {
		return MaxCredits
	}
	return Credits(sum.Int64())
}

func FuzzPriceCost(f *testing.F) {
	f.Add(int64(2_500_000), int64(10_000_000), int64(0), int64(0), int64(0), int64(0), int64(1), int64(1), int64(0), int64(0), int64(0))
	f.Add(int64(1), int64(1), int64(1), int64(1), int64(1), int64(1), int64(999_999), int64(1_000_001), int64(3), int64(1499), int64(2))
	f.Add(int64(MaxCredits), int64(MaxCredits), int64(MaxCredits), int64(MaxCredits), int64(MaxCredits), int64(MaxCredits),
		int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64), int64(math.MaxInt64))
	f.Add(int64(-1), int64(math.MinInt64), int64(7), int64(0), int64(3), int64(-9), int64(-1), int64(5), int64(math.MinInt64), int64(1), int64(0))
	f.Fuzz(func(t *testing.T, in, out, ch, sec, img, req, uin, uout, uch, ums, uimg int64) {
		p := Price{InputPerMillion: Credits(in), OutputPerMillion: Credits(out), PerCharacter: Credits(ch),
			PerSecond: Credits(sec), PerImage: Credits(img), PerRequest: Credits(req)}
		u := Units{InputTokens: uin, OutputTokens: uout, Characters: uch, AudioMillis: ums, Images: uimg}
		got, want := p.Cost(u), bigCost(p, u)
		if got != want {
			t.Fatalf("Cost(%+v, %+v) = %d, math/big says %d", p, u, got, want)
		}
		if got < 0 || got > MaxCredits {
			t.Fatalf("Cost out of range: %d", got)
		}
	})
}
