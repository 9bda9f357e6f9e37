package audio

import "bytes"

// Per-packet durations of the codecs that Ogg and Matroska carry. Both are
// computed from the packet itself, never from container timestamps, which
// a decoder does not need to play the packet and a client may set freely.

// opusSamples is the duration of one Opus packet at 48 kHz, from its TOC
// byte and, for code 3, its frame count byte (RFC 6716, section 3.1).
// Packets a decoder rejects (empty, a missing or zero count, more than
// 120 ms) play nothing and count 0.
func opusSamples(p []byte) uint64 {
	if len(p) == 0 {
		return 0
	}
	toc := p[0]
	frames := uint64(1)
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 0
		}
		frames = uint64(p[1] & 0x3F)
	}
	n := frames * opusFrameSamples(toc>>3)
	if n > 5760 {
		return 0
	}
	return n
}

// opusFrameSamples is a configuration's frame length at 48 kHz.
func opusFrameSamples(config byte) uint64 {
	switch {
	case config < 12: // SILK: 10, 20, 40, 60 ms
		return [4]uint64{480, 960, 1920, 2880}[config&3]
	case config < 16: // hybrid: 10, 20 ms
		return [2]uint64{480, 960}[config&1]
	default: // CELT: 2.5, 5, 10, 20 ms
		return [4]uint64{120, 240, 480, 960}[config&3]
	}
}

// isOpusHeader is true for the OpusHead and OpusTags packets. Neither
// could be an audio packet: 'O' then 'p' is a code-3 packet of 48 frames,
// which a decoder rejects.
func isOpusHeader(p []byte) bool {
	return bytes.HasPrefix(p, []byte("OpusHead")) || bytes.HasPrefix(p, []byte("OpusTags"))
}

// vorbisInfo is what a stream's identification and setup headers say
// about durations.
type vorbisInfo struct {
	rate, channels        uint64
	shortBlock, longBlock uint64 // blocksize_0, blocksize_1, samples
	long                  []bool // per mode: codes a long block; nil until a setup header is read
}

// parseVorbisID reads an identification header packet, with the checks a
// decoder makes on the fields used here.
func parseVorbisID(p []byte) (vorbisInfo, bool) {
	if len(p) < 30 || !bytes.HasPrefix(p, []byte("\x01vorbis")) {
		return vorbisInfo{}, false
	}
	v := vorbisInfo{
		rate: le32(p[12:]), channels: uint64(p[11]),
		shortBlock: 1 << (p[28] & 0x0F), longBlock: 1 << (p[28] >> 4),
	}
	if v.rate == 0 || v.channels == 0 || v.shortBlock < 64 || v.longBlock > 8192 || v.shortBlock > v.longBlock {
		return vorbisInfo{}, false
	}
	return v, true
}

// vorbisSamples bounds one packet's share of the output. A decoder outputs,
// for each audio packet after the first, a quarter of the previous block
// plus a quarter of its own; summed over a stream, every block counts at
// most a quarter twice. So half of each packet's block size, summed over
// the packets present, bounds the output whatever their order or which of
// them a decoder drops, and exceeds it by at most one block per stream.
// The block size is the packet's mode's (read from the setup header), or
// the long block size when the modes are not known. Header packets (odd
// first byte), empty packets and packets naming no mode decode to nothing.
func (v vorbisInfo) vorbisSamples(p []byte) uint64 {
	if len(p) == 0 || p[0]&1 != 0 {
		return 0
	}
	if v.long == nil {
		return v.longBlock / 2
	}
	r := lsbReader{b: p}
	r.read(1) // the packet type
	mode := r.read(ilog(uint64(len(v.long) - 1)))
	switch {
	case r.short || mode >= uint64(len(v.long)):
		return 0
	case v.long[mode]:
		return v.longBlock / 2
	}
	return v.shortBlock / 2
}
