// Package audio measures how long an uploaded audio file plays, so a
// transcription can be charged for its real length rather than a cap.
//
// The file is hostile input on a money path, so every measurement is an
// upper bound of what a decoder could produce from the same bytes: headers
// that state a duration or a size are claims, the frames or packets present
// are counted, and the larger of the two is returned. Where no safe bound
// exists (an unknown container or codec, a structure that cannot be
// walked) the answer is an error, never a guess; the caller then charges
// its cap and records the error's text.
//
// The package is pure Go with no dependencies beyond the standard library:
// each parser is small, reads only headers and frame boundaries, allocates
// nothing in proportion to sizes a header claims, and runs in time linear in
// the input. Durations are integer milliseconds, rounded up.
package audio

import (
	"errors"
	"fmt"
	"strconv"
)

// Format is the container recognised from a file's content.
type Format string

// The formats Duration recognises. FormatUnknown is a file that matches none.
const (
	FormatUnknown Format = ""
	FormatWAV     Format = "wav"  // RIFF/RF64 WAVE
	FormatMP3     Format = "mp3"  // MPEG-1/2/2.5 audio layers I-III, with or without ID3v2
	FormatFLAC    Format = "flac" // native FLAC
	FormatOgg     Format = "ogg"  // Ogg Opus, Ogg Vorbis
	FormatMP4     Format = "mp4"  // ISO BMFF / QuickTime: M4A, MP4 (AAC, MP3)
	FormatWebM    Format = "webm" // WebM and Matroska (Opus, Vorbis)
)

// MaxMillis is the largest duration Duration reports: a claim beyond it
// (a header may state anything) saturates here rather than overflowing.
// It is about 31 years, far below the 2^53 that money code keeps to.
const MaxMillis int64 = 1_000_000_000_000

// The errors Duration returns wrap one of these. Their texts, and the
// details added to them, are short printable ASCII: safe to record.
var (
	// ErrUnrecognized: the content matches no supported container.
	ErrUnrecognized = errors.New("audio: content is not a supported audio format")
	// ErrUnsupported: the container is known but holds a codec or layout
	// whose duration cannot be bounded from its bytes.
	ErrUnsupported = errors.New("audio: unsupported codec or layout")
	// ErrMalformed: the container is known but its structure cannot be
	// walked far enough to find the audio.
	ErrMalformed = errors.New("audio: malformed file")
)

// Measurement is a file's measured duration.
type Measurement struct {
	Format Format
	// Millis is the duration rounded up to a whole millisecond, at most
	// MaxMillis. It may be 0 for a well-formed file that holds no audio.
	Millis int64
}

// Duration measures b, a whole uploaded file. On error the duration is
// unknown: Measurement.Format still says which container was recognised
// (FormatUnknown when none), Millis is 0, and the error wraps
// ErrUnrecognized, ErrUnsupported or ErrMalformed.
func Duration(b []byte) (Measurement, error) {
	f := detect(b)
	var d millis
	var err error
	switch f {
	case FormatWAV:
		d, err = wavDuration(b)
	case FormatMP3:
		d, err = mp3Duration(b)
	case FormatFLAC:
		d, err = flacDuration(b)
	case FormatOgg:
		d, err = oggDuration(b)
	case FormatMP4:
		d, err = mp4Duration(b)
	case FormatWebM:
		d, err = webmDuration(b)
	default:
		return Measurement{}, ErrUnrecognized
	}
	if err != nil {
		return Measurement{Format: f}, fmt.Errorf("%s: %w", f, err)
	}
	return Measurement{Format: f, Millis: int64(d)}, nil
}

// unsupported and malformed wrap the sentinel errors with a detail that
// callers write as a constant or with %d/%x verbs, never raw file bytes.
func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnsupported}, args...)...)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// quoted is a name taken from the file (a codec ID), cut short and quoted
// in printable ASCII, for an error text.
func quoted(s string) string { return strconv.QuoteToASCII(s[:min(len(s), 32)]) }
