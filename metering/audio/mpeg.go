package audio

// MPEG audio (MP3 and its layers I and II). A frame has no length field
// beyond its header's bit rate, and a decoder finds frames by their 11-bit
// sync, resynchronising byte by byte after anything it does not accept. A
// hostile file can hide frames where one parser is out of step with
// another, so the measurement is not one parse but the most a parse could
// yield: the longest total duration of any sequence of non-overlapping
// valid frame headers in the file (each frame counted in full even when the
// file ends inside it). Whatever frames a decoder plays form such a
// sequence, so no decoder gets more. A dynamic programme over byte
// positions computes it in linear time with a window of one maximum frame
// length. Free-format frames (bit rate index 0) have no computable length
// and are not frames here, as in FFmpeg's parser.
//
// A Xing/Info or VBRI header's frame count is a claim; the result is the
// larger of it and the measurement.

// mpegUnitsPerSecond is the least common multiple of all MPEG audio sample
// rates, so every frame's duration is a whole number of units.
const mpegUnitsPerSecond = 14_112_000

// mpegWindow exceeds the longest MPEG audio frame (2881 bytes: layer II,
// MPEG-2.5, 160 kbit/s at 8 kHz, padded), a power of two for the ring index.
const mpegWindow = 4096

type mpegFrame struct {
	length  int    // bytes, header included
	samples uint64 // per channel
	rate    uint64 // Hz
	mono    bool
	mpeg1   bool
}

var mpegRates = [4][3]uint64{
	{11025, 12000, 8000},  // MPEG-2.5
	{},                    // reserved
	{22050, 24000, 16000}, // MPEG-2
	{44100, 48000, 32000}, // MPEG-1
}

// mpegBitrates in kbit/s by [mpeg1?][layer index: 0 = III, 1 = II, 2 = I][index].
var mpegBitrates = [2][3][15]uint64{
	{ // MPEG-2 and 2.5
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
		{0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256},
	},
	{ // MPEG-1
		{0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320},
		{0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384},
		{0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448},
	},
}

// parseMPEGHeader accepts exactly the headers FFmpeg's check does
// (ff_mpa_check_header) minus free format.
func parseMPEGHeader(b []byte) (mpegFrame, bool) {
	if len(b) < 4 || b[0] != 0xFF || b[1]&0xE0 != 0xE0 {
		return mpegFrame{}, false
	}
	version := (b[1] >> 3) & 3
	layerBits := (b[1] >> 1) & 3
	brIndex := b[2] >> 4
	srIndex := (b[2] >> 2) & 3
	if version == 1 || layerBits == 0 || brIndex == 0 || brIndex == 15 || srIndex == 3 {
		return mpegFrame{}, false
	}
	f := mpegFrame{rate: mpegRates[version][srIndex], mono: b[3]>>6 == 3, mpeg1: version == 3}
	pad := int(b[2]>>1) & 1
	v1 := 0
	if f.mpeg1 {
		v1 = 1
	}
	br := int(mpegBitrates[v1][layerBits-1][brIndex]) * 1000
	sr := int(f.rate)
	switch layerBits {
	case 3: // layer I
		f.samples = 384
		f.length = (12*br/sr + pad) * 4
	case 2: // layer II
		f.samples = 1152
		f.length = 144*br/sr + pad
	default: // layer III
		if f.mpeg1 {
			f.samples = 1152
			f.length = 144*br/sr + pad
		} else {
			f.samples = 576
			f.length = 72*br/sr + pad
		}
	}
	return f, true
}

func (f mpegFrame) units() uint64 { return f.samples * (mpegUnitsPerSecond / f.rate) }

// mp3Duration is max(claimed, measured) as described above.
func mp3Duration(b []byte) (millis, error) {
	measured := mpegBestChain(b)
	if measured == 0 {
		return 0, malformed("no MPEG audio frame")
	}
	claimed := mpegClaim(b)
	return mulDivCeilMillis(max(measured, claimed), 1000, mpegUnitsPerSecond), nil
}

func mulDivCeilMillis(a, b, d uint64) millis { return millis(mulDivCeil(a, b, d, uint64(maxMillis))) }

// mpegBestChain is the dynamic programme: best(i) = max(best(i+1),
// units(frame at i) + best(end of that frame)), best(i) = 0 for i >= len(b).
// Frame lengths are below mpegWindow, so a ring of that many values holds
// every best(j) still needed.
func mpegBestChain(b []byte) uint64 {
	var ring [mpegWindow]uint64
	next := uint64(0) // best(i+1)
	for i := len(b) - 1; i >= 0; i-- {
		v := next
		if b[i] == 0xFF {
			if f, ok := parseMPEGHeader(b[i:]); ok {
				c := f.units()
				if end := i + f.length; end < len(b) {
					c += ring[end%mpegWindow]
				}
				v = max(v, c)
			}
		}
		ring[i%mpegWindow] = v
		next = v
	}
	return next
}

// mpegClaim is what the Xing/Info and VBRI headers in the file claim, in
// duration units: the sum over every valid frame that carries one (each
// file of a concatenation has its own), so no choice of "first frame"
// decides it. A chance tag needs four exact bytes at the exact offset
// behind a valid header.
func mpegClaim(b []byte) uint64 {
	var total uint64
	for i := 0; i+4 <= len(b); i++ {
		if b[i] != 0xFF {
			continue
		}
		f, ok := parseMPEGHeader(b[i:])
		if !ok {
			continue
		}
		frame := b[i:min(len(b), i+max(f.length, 64))]
		xing := 21 // 4-byte header + side information
		switch {
		case f.mpeg1 && !f.mono:
			xing = 36
		case !f.mpeg1 && f.mono:
			xing = 13
		}
		var frames uint64
		if len(frame) >= xing+12 {
			tag := string(frame[xing : xing+4])
			if (tag == "Xing" || tag == "Info") && be32(frame[xing+4:])&1 != 0 {
				frames = be32(frame[xing+8:])
			}
		}
		if len(frame) >= 36+18 && string(frame[36:40]) == "VBRI" {
			frames = max(frames, be32(frame[36+14:]))
		}
		total = satAdd(total, satMul(frames, f.units()))
	}
	return total
}

// mpegFirstFrame is the first position at or after start where three
// consecutive valid frames (or fewer reaching the end of b) begin; -1 when
// there is none. It identifies MPEG audio the way decoders probe for it,
// but over the whole file: junk before the frames must not make a file
// unknown. Each position costs at most three header checks.
func mpegFirstFrame(b []byte, start int) int {
	for i := start; i < len(b); i++ {
		if b[i] == 0xFF && mpegRun(b, i, 3) {
			return i
		}
	}
	return -1
}

func mpegRun(b []byte, i, n int) bool {
	for k := 0; k < n; k++ {
		if i == len(b) && k > 0 {
			return true
		}
		f, ok := parseMPEGHeader(b[i:])
		if !ok {
			return false
		}
		i += f.length
		if i > len(b) {
			return k > 0
		}
	}
	return true
}
