package audio

import (
	"bytes"
	"math/big"
)

// EBML (Matroska, WebM) primitives.

// ebmlID reads an element ID (1 to 4 bytes, marker bits kept).
func ebmlID(b []byte) (id uint64, n int, ok bool) {
	if len(b) == 0 || b[0] < 0x10 {
		return 0, 0, false
	}
	n = 1
	for b[0]&(0x80>>(n-1)) == 0 {
		n++
	}
	if len(b) < n {
		return 0, 0, false
	}
	for _, c := range b[:n] {
		id = id<<8 | uint64(c)
	}
	return id, n, true
}

// ebmlVint reads a variable-length integer (1 to 8 bytes, marker removed);
// unknown is true for the reserved all-ones value (an unknown size).
func ebmlVint(b []byte) (v uint64, n int, unknown, ok bool) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0, false, false
	}
	n = 1
	for b[0]&(0x80>>(n-1)) == 0 {
		n++
	}
	if len(b) < n {
		return 0, 0, false, false
	}
	v = uint64(b[0] & (0xFF >> n))
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, v == 1<<(7*n)-1, true
}

// ebmlElement is one element header at the start of b.
type ebmlElement struct {
	id      uint64
	header  int    // bytes of ID and size
	size    uint64 // payload bytes, when known
	unknown bool   // the size is unknown (only masters may have one)
}

func readEBMLElement(b []byte) (ebmlElement, bool) {
	id, n, ok := ebmlID(b)
	if !ok {
		return ebmlElement{}, false
	}
	size, m, unknown, ok := ebmlVint(b[n:])
	if !ok {
		return ebmlElement{}, false
	}
	return ebmlElement{id: id, header: n + m, size: size, unknown: unknown}, true
}

// payload is the element's payload when it starts at pos in b, cut at the
// end of b, and the offset just past it (beyond len(b) when cut).
func (e ebmlElement) payload(b []byte, pos int) ([]byte, uint64) {
	start := uint64(pos + e.header)
	end := satAdd(start, e.size)
	return b[start:min(end, uint64(len(b)))], end
}

func ebmlUint(p []byte) uint64 {
	var v uint64
	for _, c := range p[:min(len(p), 8)] {
		v = v<<8 | uint64(c)
	}
	return v
}

// ebmlFloatMillis converts a float element (4 or 8 bytes, IEEE 754) times
// scale nanoseconds to milliseconds, rounded up, with exact integer
// arithmetic on the float's mantissa and exponent. Negative, infinite and
// NaN values give 0 (they claim nothing).
func ebmlFloatMillis(p []byte, scale uint64) millis {
	var mant uint64
	var exp int
	switch len(p) {
	case 4:
		bits := be32(p)
		e, f := int(bits>>23&0xFF), bits&(1<<23-1)
		if bits>>31 != 0 || e == 0xFF {
			return 0
		}
		mant, exp = f, -149
		if e != 0 {
			mant, exp = f|1<<23, e-150
		}
	case 8:
		bits := be64(p)
		e, f := int(bits>>52&0x7FF), bits&(1<<52-1)
		if bits>>63 != 0 || e == 0x7FF {
			return 0
		}
		mant, exp = f, -1074
		if e != 0 {
			mant, exp = f|1<<52, e-1075
		}
	default:
		return 0
	}
	num := new(big.Int).Mul(new(big.Int).SetUint64(mant), new(big.Int).SetUint64(scale))
	den := big.NewInt(1_000_000)
	if exp >= 0 {
		if exp > 128 { // beyond any MaxMillis
			return maxMillis
		}
		num.Lsh(num, uint(exp))
	} else {
		den.Lsh(den, uint(-exp))
	}
	q, r := new(big.Int).QuoRem(num, den, new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsUint64() || q.Uint64() > uint64(maxMillis) {
		return maxMillis
	}
	return millis(q.Uint64())
}

// finder finds the next occurrence at or after a position of any of a
// few patterns. Positions asked for only grow, so each pattern's search
// moves forward through b once: linear in total.
type finder struct {
	b    []byte
	pats [][]byte
	next []int // per pattern: the next occurrence, -1 none, -2 not searched
}

func newFinder(b []byte, pats ...[]byte) *finder {
	f := &finder{b: b, pats: pats, next: make([]int, len(pats))}
	for i := range f.next {
		f.next[i] = -2
	}
	return f
}

// from returns the first occurrence of any pattern at or after pos, or -1.
func (f *finder) from(pos int) int {
	best := -1
	for i, p := range f.pats {
		if f.next[i] == -2 || (f.next[i] >= 0 && f.next[i] < pos) {
			f.next[i] = -1
			if pos <= len(f.b) {
				if k := bytes.Index(f.b[pos:], p); k >= 0 {
					f.next[i] = pos + k
				}
			}
		}
		if n := f.next[i]; n >= 0 && (best < 0 || n < best) {
			best = n
		}
	}
	return best
}
