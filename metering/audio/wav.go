package audio

import "bytes"

// WAV. For the PCM family (integer PCM, IEEE float, A-law, mu-law, and
// WAVE_FORMAT_EXTENSIBLE of those) every byte of sample data is audio, so
// the bytes fix the duration exactly: sample data / (rate x frame bytes).
//
// Sample data is taken from the start of the data chunk to the end of the
// file, whatever the chunk's size field says: a size that claims less than
// follows must not hide audio (FFmpeg reads on into further data chunks,
// and other decoders ignore the size), and a size that claims more cannot
// add audio the file does not hold. Streamed WAVs leave the size at 0 or
// 0xFFFFFFFF, so honouring a larger claim would also charge them for hours.
// Chunks after the data (rare, small) are counted as audio: an upper bound.
//
// Every "WAVEfmt " in the file is read (a second, concatenated WAV may
// start mid-file) and the smallest byte rate among them is used; a frame's
// size is the smaller of its channels x bytes per sample and its block
// align, whichever a decoder believes. Other codecs (ADPCM, GSM, MP3 in
// WAV, ...) have no bound from their headers and are unsupported.

const maxWAVRate = 768_000 // above any real rate; a decoder resampling more is not transcribing speech

func wavDuration(b []byte) (millis, error) {
	data := wavDataStart(b)
	if data < 0 {
		return 0, malformed("no data chunk")
	}
	// The smallest byte rate of the fmt chunk the walk finds and of every
	// "WAVEfmt " in the file.
	var byteRate uint64
	consider := func(c int) error {
		r, err := wavByteRate(b[c:])
		if err == nil && (byteRate == 0 || r < byteRate) {
			byteRate = r
		}
		return err
	}
	if c := wavChunk(b, "fmt "); c >= 0 {
		if err := consider(c); err != nil {
			return 0, err
		}
	}
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte("WAVEfmt "))
		if k < 0 {
			break
		}
		i += k + 8
		if err := consider(i); err != nil {
			return 0, err
		}
	}
	if byteRate == 0 {
		return 0, malformed("no fmt chunk")
	}
	return samplesToMillis(uint64(len(b)-data), byteRate), nil
}

// wavByteRate reads a fmt chunk from its size field on: bytes per second
// of sample data for the PCM family, an error otherwise.
func wavByteRate(c []byte) (uint64, error) {
	if len(c) < 4+16 {
		return 0, malformed("short fmt chunk")
	}
	size := le32(c)
	c = c[4:]
	tag := le16(c)
	channels, rate, align, bits := le16(c[2:]), le32(c[4:]), le16(c[12:]), le16(c[14:])
	if tag == 0xFFFE && size >= 40 && len(c) >= 26 {
		tag = le16(c[24:]) // the sub-format GUID starts with the format code
	}
	switch tag {
	case 1, 3, 6, 7: // PCM, IEEE float, A-law, mu-law
	default:
		return 0, unsupported("WAV format tag 0x%04x", tag)
	}
	if channels == 0 || rate == 0 || bits == 0 {
		return 0, malformed("fmt chunk with zero channels, rate or bits")
	}
	if rate > maxWAVRate {
		return 0, unsupported("WAV sample rate %d", rate)
	}
	frame := channels * ((bits + 7) / 8)
	if align > 0 {
		frame = min(frame, align)
	}
	return rate * frame, nil
}

// wavDataStart is the offset of the first sample byte: the earlier of the
// data chunks that a chunk walk finds with and without the RIFF rule that
// odd-sized chunks are padded (decoders differ on it); -1 when neither
// walk finds one.
func wavDataStart(b []byte) int {
	a, c := wavWalk(b, "data", true), wavWalk(b, "data", false)
	switch {
	case a < 0:
		return c
	case c < 0:
		return a
	}
	return min(a, c)
}

// wavChunk is the offset of a chunk's size field, found by the padded walk.
func wavChunk(b []byte, id string) int {
	if i := wavWalk(b, id, true); i >= 0 {
		return i - 4
	}
	return -1
}

// wavWalk walks the chunks after the 12-byte RIFF header and returns the
// offset of the payload of the first chunk named id, or -1.
func wavWalk(b []byte, id string, pad bool) int {
	for i := 12; i+8 <= len(b); {
		size := le32(b[i+4:])
		if string(b[i:i+4]) == id {
			return i + 8
		}
		if pad {
			size += size & 1
		}
		next := uint64(i) + 8 + size
		if next > uint64(len(b)) {
			return -1
		}
		i = int(next)
	}
	return -1
}
