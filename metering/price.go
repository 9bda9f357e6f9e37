package metering

import (
	"fmt"
	"math/bits"
	"regexp"
	"time"
)

// Price is what one model costs, in micro-credits. Absent fields are 0.
//
// Validate bounds every rate to 0..MaxPriceRate (= MaxCredits, just under
// 2^53 micro-credits, about 9.007 billion credits), so each rate fits a Lua
// double exactly like any other amount. Cost does not rely on those bounds
// for correctness: it works in 128-bit intermediates and saturates.
type Price struct {
	Model            string
	InputPerMillion  Credits // per 1,000,000 input tokens
	OutputPerMillion Credits // per 1,000,000 output tokens
	PerCharacter     Credits // per character of speech input
	PerSecond        Credits // per second of transcribed audio
	PerImage         Credits // per generated image
	PerRequest       Credits // per request
	UpdatedAt        time.Time
}

// Units is what a request used (or is estimated to use).
type Units struct {
	InputTokens, OutputTokens int64
	Characters                int64
	AudioMillis               int64 // transcription audio, milliseconds
	Images                    int64
}

// MaxPriceRate is the largest value Validate accepts for any rate of a Price.
const MaxPriceRate = MaxCredits

// Cost is the price of u: each component rounded UP to a whole micro-credit
// (so nothing is free by rounding), summed, saturating at MaxCredits.
//
// Negative units or rates count as zero: a malformed usage report or an
// unvalidated price must never turn a charge into a payout.
//
// Each component is rate×units/divisor with a 128-bit product (bits.Mul64)
// and a 128-by-64 division (bits.Div64), so no input overflows; a component
// is capped at MaxCredits, and six capped components sum to at most
// 6×(2^53-1) < 2^63, so the sum cannot overflow int64 before its own cap.
func (p Price) Cost(u Units) Credits {
	sum := component(p.InputPerMillion, u.InputTokens, 1_000_000) +
		component(p.OutputPerMillion, u.OutputTokens, 1_000_000) +
		component(p.PerCharacter, u.Characters, 1) +
		component(p.PerSecond, u.AudioMillis, 1000) +
		component(p.PerImage, u.Images, 1) +
		component(p.PerRequest, 1, 1)
	return min(sum, MaxCredits)
}

// component is ceil(rate×units/div), clamped to 0..MaxCredits. div > 0.
func component(rate Credits, units int64, div uint64) Credits {
	if rate <= 0 || units <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(rate), uint64(units))
	if hi >= div {
		// The quotient needs more than 64 bits (and Div64 would panic).
		return MaxCredits
	}
	q, r := bits.Div64(hi, lo, div)
	if r != 0 {
		q++
		if q == 0 { // wrapped: q was 2^64-1, far above MaxCredits anyway
			return MaxCredits
		}
	}
	if q > uint64(MaxCredits) {
		return MaxCredits
	}
	return Credits(q)
}

// modelPattern allows provider-qualified names such as "openai/gpt-4o" and
// tags such as "llama3:8b"; the first character keeps names from starting
// with a separator, which would make the admin URL ambiguous.
var modelPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$`)

// ValidModel reports whether s is a valid model name for a price.
func ValidModel(s string) bool { return modelPattern.MatchString(s) }

// Validate checks a price: the model name and every rate in 0..MaxPriceRate.
// Errors are *InvalidError naming the admin API's field.
func (p Price) Validate() error {
	if problem := ModelNameProblem(p.Model); problem != "" {
		return invalidName("model", "model name", p.Model, problem)
	}
	for _, f := range p.rates() {
		if f.v < 0 || f.v > MaxPriceRate {
			return invalid(f.field, fmt.Sprintf("must be between 0 and %s", MaxPriceRate))
		}
	}
	return nil
}

// rates lists the rates with their admin API field names, in API order.
func (p Price) rates() []struct {
	field string
	v     Credits
} {
	return []struct {
		field string
		v     Credits
	}{
		{"input_per_million", p.InputPerMillion},
		{"output_per_million", p.OutputPerMillion},
		{"per_character", p.PerCharacter},
		{"per_second", p.PerSecond},
		{"per_image", p.PerImage},
		{"per_request", p.PerRequest},
	}
}
