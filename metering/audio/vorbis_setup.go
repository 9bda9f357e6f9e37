package audio

import "bytes"

// The Vorbis setup header, parsed forwards as a decoder does, for its mode
// table: which modes code long blocks. (FFmpeg's parser reads the modes
// backwards from the end of the packet, a heuristic that trailing bytes can
// fool; here a wrong table would undercharge, so only a full parse will do.)
// Every loop reads at least one bit per pass or has a small fixed bound,
// and reading stops at the packet's end, so the work is linear in the
// packet's length.

// vorbisModes returns, for each mode, whether it codes a long block; ok is
// false when the packet is not a setup header a decoder would accept.
func vorbisModes(p []byte, channels uint64) (long []bool, ok bool) {
	if !bytes.HasPrefix(p, []byte("\x05vorbis")) {
		return nil, false
	}
	r := &lsbReader{b: p[7:]}
	codebooks := r.read(8) + 1
	for range codebooks {
		if !vorbisSkipCodebook(r) {
			return nil, false
		}
	}
	for range r.read(6) + 1 { // time domain transforms: placeholders
		if r.read(16) != 0 {
			return nil, false
		}
	}
	for range r.read(6) + 1 {
		if !vorbisSkipFloor(r) {
			return nil, false
		}
	}
	for range r.read(6) + 1 {
		if !vorbisSkipResidue(r) {
			return nil, false
		}
	}
	mappings := r.read(6) + 1
	for range mappings {
		if !vorbisSkipMapping(r, channels) {
			return nil, false
		}
	}
	modes := r.read(6) + 1
	long = make([]bool, modes) // at most 64
	for i := range long {
		long[i] = r.read(1) == 1
		if r.read(16) != 0 || r.read(16) != 0 || r.read(8) >= mappings { // window, transform, mapping
			return nil, false
		}
	}
	if r.read(1) != 1 || r.short { // the framing bit
		return nil, false
	}
	return long, true
}

func vorbisSkipCodebook(r *lsbReader) bool {
	if r.read(24) != 0x564342 {
		return false
	}
	dims, entries := r.read(16), r.read(24)
	if r.read(1) == 1 { // ordered lengths
		length := r.read(5) + 1
		for cur := uint64(0); cur < entries; length++ {
			if length > 32 || r.short {
				return false
			}
			cur += r.read(ilog(entries - cur))
			if cur > entries {
				return false
			}
		}
	} else {
		sparse := r.read(1) == 1
		for i := uint64(0); i < entries && !r.short; i++ {
			if !sparse || r.read(1) == 1 {
				r.read(5)
			}
		}
	}
	switch lookup := r.read(4); lookup {
	case 0:
	case 1, 2:
		r.read(32) // minimum value
		r.read(32) // delta value
		bits := int(r.read(4)) + 1
		r.read(1) // sequence flag
		values := satMul(entries, dims)
		if lookup == 1 {
			values = lookup1Values(entries, dims)
		}
		for i := uint64(0); i < values && !r.short; i++ {
			r.read(bits)
		}
	default:
		return false
	}
	return !r.short
}

// lookup1Values is the largest r with r^dims <= entries (Vorbis I, 9.2.3).
func lookup1Values(entries, dims uint64) uint64 {
	if dims == 0 {
		return 0
	}
	lo, hi := uint64(0), entries // lo^dims <= entries
	for lo < hi {
		mid := hi - (hi-lo)/2
		if powAtMost(mid, dims, entries) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// powAtMost is base^exp <= limit, stopping as soon as the power exceeds it.
func powAtMost(base, exp, limit uint64) bool {
	if base <= 1 {
		return base <= limit || exp == 0
	}
	p := uint64(1)
	for range exp {
		p = satMul(p, base)
		if p > limit {
			return false
		}
	}
	return true
}

func vorbisSkipFloor(r *lsbReader) bool {
	switch r.read(16) {
	case 0:
		r.read(8)  // order
		r.read(16) // rate
		r.read(16) // bark map size
		r.read(6)  // amplitude bits
		r.read(8)  // amplitude offset
		for range r.read(4) + 1 {
			r.read(8) // book
		}
	case 1:
		partitions := r.read(5)
		var classOf [31]uint64
		maxClass := uint64(0)
		for i := range partitions {
			classOf[i] = r.read(4)
			maxClass = max(maxClass, classOf[i])
		}
		var dims [16]uint64
		for c := range maxClass + 1 {
			dims[c] = r.read(3) + 1
			sub := r.read(2)
			if sub != 0 {
				r.read(8) // master book
			}
			for range 1 << sub {
				r.read(8) // sub-class book + 1
			}
		}
		r.read(2) // multiplier - 1
		bits := int(r.read(4))
		for i := range partitions {
			for range dims[classOf[i]] {
				r.read(bits)
			}
		}
	default:
		return false
	}
	return !r.short
}

func vorbisSkipResidue(r *lsbReader) bool {
	if r.read(16) > 2 {
		return false
	}
	r.read(24) // begin
	r.read(24) // end
	r.read(24) // partition size - 1
	classifications := r.read(6) + 1
	r.read(8) // classbook
	books := 0
	for range classifications {
		cascade := r.read(3)
		if r.read(1) == 1 {
			cascade |= r.read(5) << 3
		}
		for c := cascade; c != 0; c &= c - 1 {
			books++
		}
	}
	for range books {
		r.read(8)
	}
	return !r.short
}

func vorbisSkipMapping(r *lsbReader, channels uint64) bool {
	if r.read(16) != 0 {
		return false
	}
	submaps := uint64(1)
	if r.read(1) == 1 {
		submaps = r.read(4) + 1
	}
	if r.read(1) == 1 { // coupling
		bits := ilog(channels - 1)
		for range r.read(8) + 1 {
			r.read(bits) // magnitude
			r.read(bits) // angle
		}
	}
	if r.read(2) != 0 {
		return false
	}
	if submaps > 1 {
		for range channels {
			r.read(4)
		}
	}
	for range submaps {
		r.read(8) // time configuration placeholder
		r.read(8) // floor
		r.read(8) // residue
	}
	return !r.short
}

// ilog is the number of bits needed to write v (Vorbis I, 9.2.1).
func ilog(v uint64) int {
	n := 0
	for ; v > 0; v >>= 1 {
		n++
	}
	return n
}

// lsbReader reads Vorbis's least-significant-bit-first fields; past the
// end it reads zeros and sets short, and every caller loop stops there.
type lsbReader struct {
	b     []byte
	pos   uint64
	short bool
}

func (r *lsbReader) read(n int) uint64 {
	var v uint64
	for i := range n {
		at := r.pos / 8
		if at >= uint64(len(r.b)) {
			r.short = true
			return 0
		}
		v |= uint64(r.b[at]>>(r.pos%8)&1) << i
		r.pos++
	}
	return v
}
