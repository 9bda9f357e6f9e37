package audio

import (
	"errors"
	"testing"
)

// FuzzDuration runs every parser on arbitrary bytes (seeded with the real
// fixtures, whole and cut) and checks what must hold for any input:
//   - no panic, and the same answer twice;
//   - a known duration lies in 0..MaxMillis with a recognised format; an
//     unknown one is 0 with an error wrapping one of the three sentinels,
//     whose text is printable ASCII (it goes into events);
//   - two copies end to end never measure less than one (WAV, MP3, FLAC,
//     Ogg: in MP4 and WebM an element cut short by the end of the file
//     reads differently when more bytes follow it);
//   - the MPEG bound is at least what a resynchronising frame parser (the
//     way decoders read MPEG audio) finds in the same bytes.
//
// Linear work is checked by TestPathological, which a quadratic parser
// would not finish within go test's timeout.
func FuzzDuration(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(fx.data)
		f.Add(fx.data[:len(fx.data)/3])
	}
	for _, name := range []string{"speech.adpcm.wav", "speech.alac.m4a"} {
		f.Add(readFixture(f, name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Duration(b)
		m2, err2 := Duration(b)
		if m != m2 || (err == nil) != (err2 == nil) {
			t.Fatalf("not deterministic: %+v %v, then %+v %v", m, err, m2, err2)
		}
		checkResult(t, m, err)

		// For the stream formats (no box or element tree whose cut-short
		// payloads read differently once more bytes follow).
		if err == nil && len(b) <= 1<<20 && m.Format != FormatMP4 && m.Format != FormatWebM {
			both := append(append(make([]byte, 0, 2*len(b)), b...), b...)
			if m2, err := Duration(both); err == nil && m2.Millis < m.Millis {
				t.Fatalf("two copies measure %d ms, one %d ms", m2.Millis, m.Millis)
			}
		}

		if got, ref := mpegBestChain(b), mpegSequential(b); got < ref {
			t.Fatalf("MPEG bound %d units below a sequential parse's %d", got, ref)
		}
	})
}

func checkResult(t *testing.T, m Measurement, err error) {
	t.Helper()
	if err == nil {
		if m.Format == FormatUnknown || m.Millis < 0 || m.Millis > MaxMillis {
			t.Fatalf("known result out of range: %+v", m)
		}
		return
	}
	if m.Millis != 0 {
		t.Fatalf("unknown result with a duration: %+v %v", m, err)
	}
	if !errors.Is(err, ErrUnrecognized) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrMalformed) {
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	for _, c := range []byte(err.Error()) {
		if c < 0x20 || c > 0x7E {
			t.Fatalf("error text has byte %#x: %q", c, err.Error())
		}
	}
}

// mpegSequential is how a decoder's parser reads MPEG audio: take a frame
// where a valid header is, skip a byte where none is.
func mpegSequential(b []byte) uint64 {
	var units uint64
	for i := 0; i < len(b); {
		f, ok := parseMPEGHeader(b[i:])
		if !ok {
			i++
			continue
		}
		units += f.units()
		i += f.length
	}
	return units
}

// TestPathological feeds each parser inputs built to make a naive one
// quadratic or allocate by claimed sizes: every position a candidate
// header, every box or element claiming gigabytes. A parser that is not
// linear in its input would not finish before go test times out.
func TestPathological(t *testing.T) {
	const size = 4 << 20
	rep := func(prefix, unit []byte) []byte {
		b := append([]byte(nil), prefix...)
		for len(b) < size {
			b = append(b, unit...)
		}
		return b
	}
	// Ogg: a real Opus first page, then a page header every 27 bytes, each
	// with a full segment table (the next headers' bytes).
	opus := fixtureNamed(t, "speech.opus.ogg").data
	first, _ := parseOggPage(opus)
	oggHeader := append([]byte("OggS\x00\x00"), make([]byte, 20)...)
	oggHeader = append(oggHeader, 255)
	// FLAC: a frame header with a valid CRC every 6 bytes.
	flacFrame := []byte{0xFF, 0xF8, 0xC9, 0x08, 0x00}
	flacFrame = append(flacFrame, crc8(flacFrame))
	cases := map[string][]byte{
		"mpeg syncs":       rep(nil, []byte{0xFF, 0xFB, 0x10, 0x00}),
		"mpeg in id3":      rep([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f"), []byte{0xFF, 0xF3, 0x10, 0xC4}),
		"flac frames":      rep([]byte("fLaC\x00\x00\x00\x22\x10\x00\x10\x00\x00\x00\x00\x00\x00\x00\x0a\xc4\x40\xf0\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"), flacFrame),
		"flac magics":      rep(nil, []byte("fLaC\x00\x00\x00\x22")),
		"ogg pages":        rep(opus[:first.length()], oggHeader),
		"ogg magics":       rep(nil, []byte("OggS")),
		"wav fmts":         rep([]byte("RIFF\xff\xff\xff\xffWAVEdata\xff\xff\xff\xff"), []byte("WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00")),
		"mp4 nested moovs": rep(nil, []byte("\xff\xff\xff\xffmoov")),
		"mp4 tiny traks":   rep([]byte("\x7f\xff\xff\xffmoov"), []byte("\x00\x00\x00\x08trak")),
		"webm clusters":    rep([]byte("\x1a\x45\xdf\xa3\x80\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"), []byte("\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff")),
		"webm blocks":      rep([]byte("\x1a\x45\xdf\xa3\x80\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff\x16\x54\xae\x6b\x8f\xae\x8d\xd7\x81\x01\x83\x81\x02\x86\x86A_OPUS\x1f\x43\xb6\x75\x01\xff\xff\xff\xff\xff\xff\xff"), []byte("\xa3\x86\x81\x00\x00\x06\x03\xff")),
		"ebml junk":        rep([]byte("\x1a\x45\xdf\xa3\x80"), []byte{0x00, 0x1f, 0x43, 0xb6}),
	}
	for name, b := range cases {
		m, err := Duration(b)
		checkResult(t, m, err)
		t.Logf("%s: %+v %v", name, m, err)
	}
}
