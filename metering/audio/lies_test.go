package audio

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// Files whose headers lie. A header claiming less than the data holds
// must not lower the result below what was decoded from the honest file;
// a header claiming more is honoured where the format's claim is a
// duration (it only raises the charge), and ignored where the bytes fix
// the duration exactly (PCM WAV).

func patched(data []byte, patch func(b []byte)) []byte {
	b := append([]byte(nil), data...)
	patch(b)
	return b
}

// index finds s in b or fails.
func index(t *testing.T, b []byte, s string) int {
	t.Helper()
	i := bytes.Index(b, []byte(s))
	if i < 0 {
		t.Fatalf("%q not found", s)
	}
	return i
}

func TestWAVLies(t *testing.T) {
	f := fixtureNamed(t, "speech.wav")
	data := wavDataStart(f.data) - 4
	for name, size := range map[string]uint32{"short": 100, "zero": 0, "streamed": 0xFFFFFFFF, "longer": 1 << 30} {
		b := patched(f.data, func(b []byte) { binary.LittleEndian.PutUint32(b[data:], size) })
		if m := mustMeasure(t, b); m.Millis != f.decoded {
			t.Errorf("data size %s: %d ms, want the %d ms the bytes hold", name, m.Millis, f.decoded)
		}
	}
	// A byte rate field claiming 100x: the rate and frame size decide.
	b := patched(f.data, func(b []byte) {
		i := index(t, b, "fmt ")
		binary.LittleEndian.PutUint32(b[i+8+8:], 800_000)
	})
	if m := mustMeasure(t, b); m.Millis != f.decoded {
		t.Errorf("byte rate lie: %d ms, want %d", m.Millis, f.decoded)
	}
	// Truncated: exactly what is left.
	cut := f.data[:len(f.data)/2]
	if m := mustMeasure(t, cut); m.Millis != samplesToMillisInt(len(cut)-wavDataStart(cut), 8000) {
		t.Errorf("truncated: %d ms", m.Millis)
	}
}

func samplesToMillisInt(n, rate int) int64 { return int64(samplesToMillis(uint64(n), uint64(rate))) }

func TestMP3Lies(t *testing.T) {
	f := fixtureNamed(t, "speech.mp3")
	tag := index(t, f.data, "Info")
	short := patched(f.data, func(b []byte) { binary.BigEndian.PutUint32(b[tag+8:], 1) })
	if m := mustMeasure(t, short); m.Millis < f.decoded {
		t.Errorf("Xing claims 1 frame: %d ms < decoded %d", m.Millis, f.decoded)
	}
	long := patched(f.data, func(b []byte) { binary.BigEndian.PutUint32(b[tag+8:], 100_000) })
	if m := mustMeasure(t, long); m.Millis != 100_000*576*1000/16000 {
		t.Errorf("Xing claims 100000 frames: %d ms", m.Millis)
	}
	// An ID3v2 tag claiming to cover the whole file hides nothing: decoders
	// that do not skip tags would play the frames inside.
	tagged := append([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f"), f.data...)
	if m := mustMeasure(t, tagged); m.Millis < f.decoded {
		t.Errorf("frames inside a huge ID3 tag: %d ms < decoded %d", m.Millis, f.decoded)
	}
	// Garbage between frames: a decoder resynchronises, so does the bound.
	mid := len(f.data) / 2
	junk := append(append(append([]byte(nil), f.data[:mid]...), bytes.Repeat([]byte{0xFF, 0x00, 0x13}, 300)...), f.data[mid:]...)
	if m := mustMeasure(t, junk); m.Millis < f.decoded-100 {
		t.Errorf("junk in the middle: %d ms, decoded %d", m.Millis, f.decoded)
	}
}

func TestFLACLies(t *testing.T) {
	f := fixtureNamed(t, "speech.flac")
	si := index(t, f.data, "fLaC") + 8
	setTotal := func(total uint64) []byte {
		return patched(f.data, func(b []byte) {
			v := binary.BigEndian.Uint64(b[si+10:])
			binary.BigEndian.PutUint64(b[si+10:], v&^(1<<36-1)|total)
		})
	}
	if m := mustMeasure(t, setTotal(80)); m.Millis < f.decoded {
		t.Errorf("STREAMINFO claims 10 ms: %d ms < decoded %d", m.Millis, f.decoded)
	}
	if m := mustMeasure(t, setTotal(0)); m.Millis < f.decoded { // 0: unknown length
		t.Errorf("STREAMINFO total unknown: %d ms < decoded %d", m.Millis, f.decoded)
	}
	if m := mustMeasure(t, setTotal(3600*8000)); m.Millis != 3_600_000 {
		t.Errorf("STREAMINFO claims an hour: %d ms", m.Millis)
	}
	// Truncated: the frames whose headers remain, or the claim.
	if m := mustMeasure(t, f.data[:len(f.data)/2]); m.Millis < f.decoded {
		t.Errorf("truncated keeps the claim: %d ms", m.Millis)
	}
}

// oggPages calls f with each page's start and fixes its CRC afterwards.
func oggRewrite(b []byte, f func(page []byte)) {
	for pos := 0; pos+27 <= len(b); {
		pg, ok := parseOggPage(b[pos:])
		if !ok || string(b[pos:pos+4]) != "OggS" {
			return
		}
		n := pg.length()
		page := b[pos : pos+n]
		f(page)
		binary.LittleEndian.PutUint32(page[22:], 0)
		var c uint32
		for _, x := range page {
			c = c<<8 ^ oggCRCTable[byte(c>>24)^x]
		}
		binary.LittleEndian.PutUint32(page[22:], c)
		pos += n
	}
}

func TestOggLies(t *testing.T) {
	for _, name := range []string{"speech.opus.ogg", "speech.vorbis.ogg"} {
		f := fixtureNamed(t, name)
		small := patched(f.data, func(b []byte) {
			oggRewrite(b, func(p []byte) {
				if binary.LittleEndian.Uint64(p[6:]) != math.MaxUint64 {
					binary.LittleEndian.PutUint64(p[6:], 1)
				}
			})
		})
		if m := mustMeasure(t, small); m.Millis < f.decoded {
			t.Errorf("%s: granules claim 1 sample: %d ms < decoded %d", name, m.Millis, f.decoded)
		}
		big := patched(f.data, func(b []byte) {
			oggRewrite(b, func(p []byte) {
				if p[5]&4 != 0 { // the last page
					binary.LittleEndian.PutUint64(p[6:], 48000*3600)
				}
			})
		})
		if m := mustMeasure(t, big); m.Millis < int64(3_600_000*48000/rateOf(t, f.data)) {
			t.Errorf("%s: last granule claims an hour or more: %d ms", name, m.Millis)
		}
		// Broken CRCs: a decoder drops the pages; the bound still counts
		// them, and for Vorbis falls back to long blocks.
		broken := patched(f.data, func(b []byte) {
			for i := 0; i+26 < len(b); i++ {
				if string(b[i:i+4]) == "OggS" {
					b[i+22] ^= 0xFF
				}
			}
		})
		if m := mustMeasure(t, broken); m.Millis < f.decoded {
			t.Errorf("%s: bad CRCs: %d ms < decoded %d", name, m.Millis, f.decoded)
		}
	}
}

func rateOf(t *testing.T, b []byte) uint64 {
	if i := bytes.Index(b, []byte("\x01vorbis")); i >= 0 {
		v, ok := parseVorbisID(b[i:])
		if !ok {
			t.Fatal("vorbis id")
		}
		return v.rate
	}
	return 48000
}

func TestMP4Lies(t *testing.T) {
	f := fixtureNamed(t, "speech.m4a")
	// Every duration field and every stts delta claims almost nothing: the
	// sample count times 1024 still bounds what the AAC decoder outputs.
	small := patched(f.data, func(b []byte) {
		for _, box := range []struct {
			name string
			off  int
		}{{"mvhd", 20}, {"mdhd", 20}, {"tkhd", 24}} {
			i := index(t, b, box.name)
			if b[i+4] != 0 {
				t.Fatalf("%s version %d", box.name, b[i+4])
			}
			binary.BigEndian.PutUint32(b[i+box.off:], 1)
		}
		i := index(t, b, "stts") + 8
		n := int(binary.BigEndian.Uint32(b[i:]))
		for k := 0; k < n; k++ {
			binary.BigEndian.PutUint32(b[i+4+8*k+4:], 1)
		}
		i = index(t, b, "elst") + 8
		for k := 0; k < int(binary.BigEndian.Uint32(b[i:])); k++ {
			binary.BigEndian.PutUint32(b[i+4+12*k:], 1)
		}
	})
	if m := mustMeasure(t, small); m.Millis < f.decoded {
		t.Errorf("durations claim 1 unit: %d ms < decoded %d", m.Millis, f.decoded)
	}
	long := patched(f.data, func(b []byte) {
		i := index(t, b, "mvhd")
		scale := binary.BigEndian.Uint32(b[i+16:])
		binary.BigEndian.PutUint32(b[i+20:], scale*3600)
	})
	if m := mustMeasure(t, long); m.Millis != 3_600_000 {
		t.Errorf("mvhd claims an hour: %d ms", m.Millis)
	}
	// A higher rate in the sample entry than in the AudioSpecificConfig:
	// the decoder plays at the config's.
	entry := patched(f.data, func(b []byte) {
		i := index(t, b, "mp4a")
		binary.BigEndian.PutUint32(b[i+4+24:], 48000<<16)
	})
	if m := mustMeasure(t, entry); m.Millis < f.decoded {
		t.Errorf("sample entry rate lie: %d ms < decoded %d", m.Millis, f.decoded)
	}
}

// TestMP4EditListRepeats: three edits each playing every sample play them
// three times; the bound multiplies by the number of non-empty edits.
func TestMP4EditListRepeats(t *testing.T) {
	one := synthMP4(100, 1)
	three := synthMP4(100, 3)
	m1, m3 := mustMeasure(t, one), mustMeasure(t, three)
	want := int64(100 * 1024 * 1000 / 16000)
	if m1.Millis != want || m3.Millis != 3*want {
		t.Fatalf("one edit %d ms, three edits %d ms; want %d and %d", m1.Millis, m3.Millis, want, 3*want)
	}
}

// synthMP4 builds a minimal M4A: one AAC-LC track at 16 kHz with n
// samples (stts deltas of 1: a lie), and the given number of edits.
func synthMP4(samples, edits uint32) []byte {
	box := func(typ string, parts ...[]byte) []byte {
		body := bytes.Join(parts, nil)
		out := binary.BigEndian.AppendUint32(nil, uint32(8+len(body)))
		return append(append(out, typ...), body...)
	}
	u32 := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		return b
	}
	var elst []byte
	for range edits {
		elst = append(elst, u32(1, 0, 1<<16)...) // 1 unit, media time 0, rate 1
	}
	asc := []byte{0x14, 0x08} // AAC-LC (2), 16 kHz (index 8), mono
	dsi := append([]byte{0x05, byte(len(asc))}, asc...)
	dcd := append(append([]byte{0x04, byte(13 + len(dsi)), 0x40, 0x15}, make([]byte, 11)...), dsi...)
	esd := append([]byte{0x03, byte(3 + len(dcd)), 0, 1, 0}, dcd...)
	mp4a := box("mp4a", make([]byte, 6), []byte{0, 1}, make([]byte, 8), []byte{0, 1, 0, 16, 0, 0, 0, 0}, u32(16000<<16),
		box("esds", u32(0), esd))
	stbl := box("stbl", box("stsd", u32(0, 1), mp4a), box("stts", u32(0, 1, samples, 1)), box("stsz", u32(0, 0, samples)))
	mdia := box("mdia", box("mdhd", u32(0, 0, 0, 16000, 1), u32(0)), box("hdlr", u32(0, 0), []byte("soun"), make([]byte, 13)),
		box("minf", stbl))
	trak := box("trak", box("tkhd", u32(0, 0, 0, 1, 0, 1)), box("edts", box("elst", u32(0, edits), elst)), mdia)
	moov := box("moov", box("mvhd", u32(0, 0, 0, 1000, 1)), trak)
	return append(box("ftyp", []byte("M4A "), u32(0)), moov...)
}

func TestWebMLies(t *testing.T) {
	for _, name := range []string{"speech.opus.webm", "speech.vorbis.webm"} {
		f := fixtureNamed(t, name)
		dur := index(t, f.data, "\x44\x89\x88") + 3
		small := patched(f.data, func(b []byte) {
			binary.BigEndian.PutUint64(b[dur:], math.Float64bits(1)) // 1 ms at the default scale
			webmZeroTimestamps(t, b)
		})
		if m := mustMeasure(t, small); m.Millis < f.decoded {
			t.Errorf("%s: Duration 1 ms, timestamps 0: %d ms < decoded %d", name, m.Millis, f.decoded)
		}
		long := patched(f.data, func(b []byte) { binary.BigEndian.PutUint64(b[dur:], math.Float64bits(3_600_000)) })
		if m := mustMeasure(t, long); m.Millis != 3_600_000 {
			t.Errorf("%s: Duration an hour: %d ms", name, m.Millis)
		}
		// A Void element whose size covers every cluster: the structure
		// walk skips them, a decoder that resynchronises does not, nor
		// does the cluster scan.
		c := index(t, f.data, "\x1f\x43\xb6\x75")
		void := binary.BigEndian.AppendUint64([]byte{0xEC}, 1<<56|uint64(len(f.data)-c)) // an 8-byte size
		hidden := append(append(append([]byte(nil), f.data[:c]...), void...), f.data[c:]...)
		if m := mustMeasure(t, hidden); m.Millis < f.decoded {
			t.Errorf("%s: clusters inside a Void: %d ms < decoded %d", name, m.Millis, f.decoded)
		}
	}
}

// webmZeroTimestamps sets every cluster's Timecode and every block's
// relative timestamp to 0.
func webmZeroTimestamps(t *testing.T, b []byte) {
	n := 0
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte("\x1f\x43\xb6\x75"))
		if k < 0 {
			break
		}
		pos := i + k
		i = pos + 1
		c, _ := readEBMLElement(b[pos:])
		for at := pos + c.header; at < len(b); {
			e, ok := readEBMLElement(b[at:])
			if !ok || e.id == idCluster || e.unknown {
				break
			}
			p, next := e.payload(b, at)
			switch e.id {
			case idTimecode:
				clear(p)
			case idSimpleBlock:
				_, l, _, _ := ebmlVint(p)
				p[l], p[l+1] = 0, 0
				n++
			}
			at = int(next)
		}
	}
	if n == 0 {
		t.Fatal("no blocks found")
	}
}

// TestConcatenated: two files end to end play both; every format's bound
// covers both decodes.
func TestConcatenated(t *testing.T) {
	for _, f := range loadFixtures(t) {
		both := append(append([]byte(nil), f.data...), f.data...)
		m, err := Duration(both)
		if err != nil {
			t.Errorf("%s twice: %v", f.name, err)
			continue
		}
		if m.Millis < 2*f.decoded {
			t.Errorf("%s twice: %d ms < 2 x %d", f.name, m.Millis, f.decoded)
		}
	}
}

// TestTruncated: a file cut anywhere is either unknown or measured; never
// a panic, never more than the whole file's claim-free bound allows.
func TestTruncated(t *testing.T) {
	for _, f := range loadFixtures(t) {
		full := mustMeasure(t, f.data)
		for cut := 0; cut < len(f.data); cut += 1 + len(f.data)/97 {
			m, err := Duration(f.data[:cut])
			if err == nil && m.Millis > full.Millis {
				t.Errorf("%s cut at %d: %d ms > whole file %d ms", f.name, cut, m.Millis, full.Millis)
			}
		}
	}
}
