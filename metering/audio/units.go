package audio

import "math/bits"

// millis is a duration in milliseconds, 0..MaxMillis. Every operation on it
// saturates at MaxMillis, so a claimed size or count can never overflow.
type millis uint64

const maxMillis = millis(MaxMillis)

// samplesToMillis is ceil(n*1000/rate), saturating; rate 0 saturates too
// (callers reject a zero rate before; this keeps the helper total).
func samplesToMillis(n, rate uint64) millis {
	return millis(mulDivCeil(n, 1000, rate, uint64(maxMillis)))
}

// mulDivCeil is ceil(a*b/d) capped at limit, with a 128-bit product so no
// input overflows. d == 0 gives limit.
func mulDivCeil(a, b, d, limit uint64) uint64 {
	if d == 0 {
		if a == 0 || b == 0 {
			return 0
		}
		return limit
	}
	hi, lo := bits.Mul64(a, b)
	if hi >= d {
		return limit
	}
	q, r := bits.Div64(hi, lo, d)
	if r != 0 {
		if q == ^uint64(0) {
			return limit
		}
		q++
	}
	return min(q, limit)
}

// add is a+b saturating at MaxMillis.
func (a millis) add(b millis) millis { return min(a+min(b, maxMillis), maxMillis) }

// satAdd and satMul are saturating uint64 arithmetic for sample counts.
func satAdd(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	if c != 0 {
		return ^uint64(0)
	}
	return s
}

func satMul(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	if hi != 0 {
		return ^uint64(0)
	}
	return lo
}

// be16, be32, be64, le16, le32 and le64 read integers; callers check length.
func be16(b []byte) uint64 { return uint64(b[0])<<8 | uint64(b[1]) }
func be24(b []byte) uint64 { return uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2]) }
func be32(b []byte) uint64 { return be16(b)<<16 | be16(b[2:]) }
func be64(b []byte) uint64 { return be32(b)<<32 | be32(b[4:]) }
func le16(b []byte) uint64 { return uint64(b[0]) | uint64(b[1])<<8 }
func le32(b []byte) uint64 { return le16(b) | le16(b[2:])<<16 }
func le64(b []byte) uint64 { return le32(b) | le32(b[4:])<<32 }
