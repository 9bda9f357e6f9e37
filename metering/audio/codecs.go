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

// vorbisInfo is what an identification header says about durations.
type vorbisInfo struct {
	rate      uint64
	longBlock uint64 // blocksize_1, samples
}

// parseVorbisID reads a Vorbis identification header packet.
func parseVorbisID(p []byte) (vorbisInfo, bool) {
	if len(p) < 30 || !bytes.HasPrefix(p, []byte("\x01vorbis")) {
		return vorbisInfo{}, false
	}
	v := vorbisInfo{rate: le32(p[12:]), longBlock: 1 << (p[28] >> 4)}
	if v.rate == 0 || v.longBlock < 64 || v.longBlock > 8192 {
		return vorbisInfo{}, false
	}
	return v, true
}

// vorbisSamples bounds one Vorbis packet: an audio packet (first bit 0)
// yields a quarter of the previous block plus a quarter of its own, at most
// half a long block. Header packets (odd first byte) and empty packets
// yield nothing. Counting every packet as long over-counts short blocks
// (transients) rather than parsing the codebooks to learn each packet's
// mode; it is a bound, and a close one for speech and music alike.
func (v vorbisInfo) vorbisSamples(p []byte) uint64 {
	if len(p) == 0 || p[0]&1 != 0 {
		return 0
	}
	return v.longBlock / 2
}
