package audio

import "bytes"

// FLAC. Frames carry no length, only a header (sync, block size, rate, a
// coded frame number and a CRC-8), and a silent frame of 65536 samples can
// take a dozen bytes, so bytes give no useful bound. What does: every frame
// a decoder plays starts with a header whose CRC-8 is valid (libFLAC and
// FFmpeg both check it), at a position of its own. The measurement is the
// sum of the block sizes of every such header anywhere in the file; a
// chance match needs 14 sync bits and the CRC, about one in 2^22 positions.
//
// STREAMINFO's total sample count is a claim; the result is the larger of
// it and the measurement. Every STREAMINFO in the file counts (streams may
// be concatenated): claims add up, and a frame that takes its rate from
// STREAMINFO is timed at the lowest rate any of them states. A frame with a
// rate of its own is timed at the lower of that and the STREAMINFO rate.

func flacDuration(b []byte) (millis, error) {
	var rate uint64 // the lowest STREAMINFO rate
	var claimedMs millis
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte("fLaC"))
		if k < 0 {
			break
		}
		i += k + 4
		si := b[i:]
		// metadata block header: type 0 (STREAMINFO, with or without the
		// last-block flag), length 34.
		if len(si) < 4+34 || si[0]&0x7F != 0 || be24(si[1:]) != 34 {
			continue
		}
		si = si[4:]
		r := be32(si[10:]) >> 12
		total := be64(si[10:]) & (1<<36 - 1)
		if r == 0 {
			continue
		}
		if rate == 0 || r < rate {
			rate = r
		}
		claimedMs = claimedMs.add(samplesToMillis(total, r))
	}
	if rate == 0 {
		return 0, malformed("no STREAMINFO")
	}

	var atRate uint64 // samples of frames timed at rate
	var other millis  // frames with a lower rate of their own
	for i := 0; i+1 < len(b); i++ {
		if b[i] != 0xFF || b[i+1]&0xFE != 0xF8 {
			continue
		}
		n, r, ok := flacFrameHeader(b[i:])
		if !ok {
			continue
		}
		if r == 0 || r >= rate {
			atRate = satAdd(atRate, n)
		} else {
			other = other.add(samplesToMillis(n, r))
		}
	}
	measured := samplesToMillis(atRate, rate).add(other)
	return max(measured, claimedMs), nil
}

// flacFrameHeader parses a frame header at the start of h: the block size
// in samples and the rate it states (0: STREAMINFO's). Only what a decoder
// needs to play the frame is checked (the sync, a defined block size and
// rate, the coded number's shape, the CRC-8): a lenient check counts more
// headers, never fewer.
func flacFrameHeader(h []byte) (samples, rate uint64, ok bool) {
	if len(h) < 6 {
		return 0, 0, false
	}
	bsCode, rateCode := h[2]>>4, h[2]&0x0F
	if bsCode == 0 || rateCode == 15 {
		return 0, 0, false
	}
	// The frame or sample number: UTF-8-like, 1 to 7 bytes.
	i := 4
	n := 0
	switch c := h[4]; {
	case c < 0x80:
		n = 0
	case c&0xE0 == 0xC0:
		n = 1
	case c&0xF0 == 0xE0:
		n = 2
	case c&0xF8 == 0xF0:
		n = 3
	case c&0xFC == 0xF8:
		n = 4
	case c&0xFE == 0xFC:
		n = 5
	case c == 0xFE:
		n = 6
	default:
		return 0, 0, false
	}
	i++
	if len(h) < i+n {
		return 0, 0, false
	}
	for _, c := range h[i : i+n] {
		if c&0xC0 != 0x80 {
			return 0, 0, false
		}
	}
	i += n
	extra := 0
	switch bsCode {
	case 6:
		extra = 1
	case 7:
		extra = 2
	}
	switch rateCode {
	case 12:
		extra++
	case 13, 14:
		extra += 2
	}
	if len(h) < i+extra+1 {
		return 0, 0, false
	}
	switch {
	case bsCode == 1:
		samples = 192
	case bsCode <= 5:
		samples = 576 << (bsCode - 2)
	case bsCode == 6:
		samples = uint64(h[i]) + 1
		i++
	case bsCode == 7:
		samples = be16(h[i:]) + 1
		i += 2
	default:
		samples = 256 << (bsCode - 8)
	}
	switch rateCode {
	case 0:
		rate = 0
	case 12:
		rate = uint64(h[i]) * 1000
		i++
	case 13:
		rate = be16(h[i:])
		i += 2
	case 14:
		rate = be16(h[i:]) * 10
		i += 2
	default:
		rate = flacRates[rateCode]
	}
	if crc8(h[:i]) != h[i] {
		return 0, 0, false
	}
	if rate == 0 && rateCode != 0 {
		return 0, 0, false // an explicit rate of 0 Hz: not playable
	}
	return samples, rate, true
}

var flacRates = [12]uint64{0, 88200, 176400, 192000, 8000, 16000, 22050, 24000, 32000, 44100, 48000, 96000}

// crc8Table is CRC-8 with polynomial x^8+x^2+x+1 (0x07), FLAC's header CRC.
var crc8Table = func() (t [256]byte) {
	for i := range t {
		c := byte(i)
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

func crc8(b []byte) byte {
	var c byte
	for _, x := range b {
		c = crc8Table[c^x]
	}
	return c
}
