package audio

import "bytes"

// detect names the container by its magic bytes; names and content types
// are the client's to choose and are never consulted.
func detect(b []byte) Format {
	switch {
	case len(b) >= 12 && bytes.Equal(b[8:12], []byte("WAVE")) &&
		(bytes.HasPrefix(b, []byte("RIFF")) || bytes.HasPrefix(b, []byte("RF64")) || bytes.HasPrefix(b, []byte("BW64"))):
		return FormatWAV
	case bytes.HasPrefix(b, []byte("OggS")):
		return FormatOgg
	case bytes.HasPrefix(b, []byte{0x1A, 0x45, 0xDF, 0xA3}):
		return FormatWebM
	case len(b) >= 8 && isMP4Box(b[4:8]):
		return FormatMP4
	}
	start := skipID3v2(b)
	if bytes.HasPrefix(b[start:], []byte("fLaC")) {
		return FormatFLAC
	}
	// MPEG audio: an ID3v2 tag (whose stated size may hide the frames, so
	// it is not trusted to say where they are), or a run of frames anywhere.
	if bytes.HasPrefix(b, []byte("ID3")) || mpegFirstFrame(b, start) >= 0 {
		return FormatMP3
	}
	return FormatUnknown
}

// isMP4Box is true for the box types an ISO BMFF or QuickTime file starts with.
func isMP4Box(t []byte) bool {
	switch string(t) {
	case "ftyp", "styp", "moov", "mdat", "free", "skip", "wide":
		return true
	}
	return false
}

// skipID3v2 returns the offset after the ID3v2 tags at the start of b (0
// when there are none). Each tag states its own size; a tag that claims
// more than b holds ends the search at len(b).
func skipID3v2(b []byte) int {
	off := 0
	for range 16 { // a few stacked tags at most; bounded in any case
		h := b[off:]
		if len(h) < 10 || !bytes.HasPrefix(h, []byte("ID3")) || h[6]|h[7]|h[8]|h[9] >= 0x80 {
			return off
		}
		size := int(h[6])<<21 | int(h[7])<<14 | int(h[8])<<7 | int(h[9]) // syncsafe
		size += 10
		if h[5]&0x10 != 0 { // footer present
			size += 10
		}
		off = min(off+size, len(b))
	}
	return off
}
