package audio

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fixture is a real file made by testdata/make.sh and the duration FFmpeg
// decodes from it (testdata/durations.txt).
type fixture struct {
	name    string
	format  Format
	decoded int64 // ms
	data    []byte
}

func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "durations.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []fixture
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, ms, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("durations.txt: bad line %q", sc.Text())
		}
		decoded, err := strconv.ParseInt(ms, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fixture{name: name, format: formatOfName(name), decoded: decoded, data: readFixture(t, name)})
	}
	if len(out) < 9 {
		t.Fatalf("durations.txt lists %d fixtures, want every format", len(out))
	}
	return out
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtureNamed(t testing.TB, name string) fixture {
	t.Helper()
	for _, f := range loadFixtures(t) {
		if f.name == name {
			return f
		}
	}
	t.Fatalf("no fixture %s", name)
	return fixture{}
}

// formatOfName is the container a fixture was written as (by make.sh's
// file names; Duration itself never looks at names).
func formatOfName(name string) Format {
	switch filepath.Ext(name) {
	case ".wav":
		return FormatWAV
	case ".mp3":
		return FormatMP3
	case ".flac":
		return FormatFLAC
	case ".ogg":
		return FormatOgg
	case ".m4a", ".mp4":
		return FormatMP4
	case ".webm":
		return FormatWebM
	}
	return FormatUnknown
}

// slack is how far above the decoded duration an honest file may be
// measured: encoder priming and padding frames, a Xing frame, the half
// block a Vorbis bound allows, rounding.
func slack(decoded int64) int64 { return max(150, decoded/10) }

func mustMeasure(t *testing.T, b []byte) Measurement {
	t.Helper()
	m, err := Duration(b)
	if err != nil {
		t.Fatalf("Duration: %v", err)
	}
	return m
}

// TestFixtures: every real file is recognised by content, and measured at
// no less than what FFmpeg decodes from it and not far above.
func TestFixtures(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			m := mustMeasure(t, f.data)
			if m.Format != f.format {
				t.Fatalf("format %q, want %q", m.Format, f.format)
			}
			if m.Millis < f.decoded || m.Millis > f.decoded+slack(f.decoded) {
				t.Fatalf("measured %d ms, decoded %d ms", m.Millis, f.decoded)
			}
			if f.format == FormatWAV && m.Millis != f.decoded {
				t.Fatalf("PCM is exact: measured %d ms, decoded %d ms", m.Millis, f.decoded)
			}
		})
	}
}

// TestUnsupportedCodecs: a known container holding a codec with no bound
// is unknown, not a guess, and says which container it was.
func TestUnsupportedCodecs(t *testing.T) {
	for name, format := range map[string]Format{"speech.adpcm.wav": FormatWAV, "speech.alac.m4a": FormatMP4} {
		m, err := Duration(readFixture(t, name))
		if !errors.Is(err, ErrUnsupported) || m.Format != format || m.Millis != 0 {
			t.Errorf("%s: %+v, %v; want %s and ErrUnsupported", name, m, err, format)
		}
	}
}

// TestUnrecognized: content that matches no container, whatever a client
// would call it.
func TestUnrecognized(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":     nil,
		"text":      []byte("this is not audio, whatever the file name says"),
		"zeros":     make([]byte, 4096),
		"html":      []byte("<!DOCTYPE html><html><body>audio.mp3</body></html>"),
		"lone sync": {0xFF, 0xFB, 0x90, 0x64},
		"png":       []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"),
	} {
		m, err := Duration(b)
		if !errors.Is(err, ErrUnrecognized) || m != (Measurement{}) {
			t.Errorf("%s: %+v, %v; want ErrUnrecognized", name, m, err)
		}
	}
}

// TestMalformed: a recognised container with nothing a decoder could play
// from is unknown.
func TestMalformed(t *testing.T) {
	for name, b := range map[string][]byte{
		"RIFF header only": []byte("RIFF\x00\x00\x00\x00WAVE"),
		"Ogg page of junk": append([]byte("OggS\x00\x02"), make([]byte, 40)...),
		"EBML header only": {0x1A, 0x45, 0xDF, 0xA3, 0x80},
		"MP4 ftyp only":    []byte("\x00\x00\x00\x10ftypM4A \x00\x00\x00\x00"),
		"FLAC magic only":  []byte("fLaC"),
	} {
		m, err := Duration(b)
		if err == nil || errors.Is(err, ErrUnrecognized) || m.Millis != 0 {
			t.Errorf("%s: %+v, %v; want an unknown duration from a recognised format", name, m, err)
		}
	}
}

// TestErrorTexts: error texts go into events; they must be printable
// ASCII even when the file names its own codec in hostile bytes.
func TestErrorTexts(t *testing.T) {
	f := fixtureNamed(t, "speech.opus.webm")
	b := append([]byte(nil), f.data...)
	i := strings.Index(string(b), "A_OPUS")
	copy(b[i:], "A_\xff\x00\n\x1b")
	_, err := Duration(b)
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("want ErrUnsupported, got %v", err)
	}
	for _, c := range []byte(err.Error()) {
		if c < 0x20 || c > 0x7E {
			t.Fatalf("error text has byte %#x: %q", c, err.Error())
		}
	}
}
