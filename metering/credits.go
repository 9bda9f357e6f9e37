package metering

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Credits is an amount of money in micro-credits: 1 credit = 1,000,000.
// Balances never use floating point; JSON carries credits as decimal numbers
// with at most six fractional digits, parsed and printed exactly.
type Credits int64

// Micro is the number of micro-credits in one credit.
const Micro Credits = 1_000_000

// MaxCredits bounds every balance and amount. Redis Lua numbers are doubles,
// so anything at or above 2^53 micro-credits would lose precision in a script.
const MaxCredits Credits = 1<<53 - 1

// ErrCreditsSyntax reports a credit amount that is not a decimal number with
// at most six fractional digits.
var ErrCreditsSyntax = errors.New("credits must be a decimal number with at most 6 fractional digits")

// ErrCreditsRange reports an amount whose magnitude is not below 2^53 micro-credits.
var ErrCreditsRange = errors.New("credits out of range")

// ParseCredits parses a decimal such as "12.5", "-3", "0.000001" or "1e3"
// exactly. Exponents are accepted because JSON encoders emit them; the result
// must still be a whole number of micro-credits.
func ParseCredits(s string) (Credits, error) {
	if s == "" {
		return 0, ErrCreditsSyntax
	}
	neg := false
	switch s[0] {
	case '-':
		neg = true
		s = s[1:]
	case '+':
		s = s[1:]
	}
	mant, exp := s, 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 30 || e < -30 {
			return 0, ErrCreditsSyntax
		}
		mant, exp = s[:i], e
	}
	intPart, frac, hasDot := strings.Cut(mant, ".")
	if intPart == "" && frac == "" || hasDot && frac == "" && intPart == "" {
		return 0, ErrCreditsSyntax
	}
	if !allDigits(intPart) || !allDigits(frac) || (hasDot && frac == "" && exp == 0 && intPart == "") {
		return 0, ErrCreditsSyntax
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	// The value is digits × 10^(exp - len(frac)); in micro-credits, × 10^6.
	shift := exp - len(frac) + 6
	if digits == "" {
		return 0, nil
	}
	for shift < 0 {
		if digits[len(digits)-1] != '0' {
			return 0, ErrCreditsSyntax
		}
		digits = digits[:len(digits)-1]
		shift++
	}
	if len(digits)+shift > 16 {
		return 0, ErrCreditsRange
	}
	v, err := strconv.ParseInt(digits+strings.Repeat("0", shift), 10, 64)
	if err != nil || Credits(v) > MaxCredits {
		return 0, ErrCreditsRange
	}
	if neg {
		v = -v
	}
	return Credits(v), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// AppendText appends the shortest exact decimal form ("12.5", "-0.000001", "3").
func (c Credits) AppendText(b []byte) []byte {
	u := uint64(c)
	if c < 0 {
		b = append(b, '-')
		u = uint64(-c)
	}
	b = strconv.AppendUint(b, u/uint64(Micro), 10)
	frac := u % uint64(Micro)
	if frac == 0 {
		return b
	}
	var digits [6]byte
	for i := 5; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := 6
	for digits[n-1] == '0' {
		n--
	}
	b = append(b, '.')
	return append(b, digits[:n]...)
}

// String formats into a stack buffer (the longest amount, "-9223372036854.775808",
// has 21 bytes), so the string is the one allocation.
func (c Credits) String() string {
	var buf [24]byte
	return string(c.AppendText(buf[:0]))
}

// MarshalJSON writes the amount as an exact JSON number.
func (c Credits) MarshalJSON() ([]byte, error) { return c.AppendText(nil), nil }

// UnmarshalJSON accepts a JSON number (or a string holding one) and parses it exactly.
func (c *Credits) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := ParseCredits(s)
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// CheckRange returns an error when |c| reaches 2^53 micro-credits.
func (c Credits) CheckRange() error {
	if c > MaxCredits || c < -MaxCredits {
		return fmt.Errorf("%w: |%s| must stay below %s", ErrCreditsRange, c, MaxCredits)
	}
	return nil
}
