package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// Audio. Speech: a WAV tone as long as reading the text would take; like
// OpenAI's, the answer is audio without usage (OpenAI bills the input's
// characters). Transcriptions and translations: a canned text, and the
// usage OpenAI reports for whisper-1, the audio's duration.

const (
	speechRate      = 24000 // samples a second, mono, 16 bits: OpenAI's pcm format
	millisPerChar   = 60    // about 16 characters a second
	maxSpeechMillis = 60_000
	// maxUpload is OpenAI's limit for an audio file, plus room for the form.
	maxUpload = 25<<20 + 1<<20
	// assumedByteRate measures audio that is not WAV: 128 kbit/s.
	assumedByteRate = 16000
)

type speechRequest struct {
	Model          string `json:"model"`
	Input          string `json:"input"`
	Voice          string `json:"voice"`
	ResponseFormat string `json:"response_format"`
}

func (h *handler) speech(w http.ResponseWriter, r *http.Request) {
	var req speechRequest
	if !readJSON(w, r, &req) {
		return
	}
	if req.Input == "" {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "input must not be empty")
		return
	}
	ms := min(max(len([]rune(req.Input))*millisPerChar, 500), maxSpeechMillis)
	pcm := tone(ms)
	if req.ResponseFormat == "pcm" {
		w.Header().Set("Content-Type", "audio/pcm")
		_, _ = w.Write(pcm)
		return
	}
	// The demo makes no compressed audio: mp3 (the default), opus, aac
	// and flac are answered with WAV too, which players recognise.
	w.Header().Set("Content-Type", "audio/wav")
	_, _ = w.Write(wavFile(pcm))
}

// tone is ms milliseconds of a quiet 440 Hz sine, 16-bit little-endian.
func tone(ms int) []byte {
	n := speechRate * ms / 1000
	b := make([]byte, 2*n)
	for i := 0; i < n; i++ {
		s := int16(3000 * math.Sin(2*math.Pi*440*float64(i)/speechRate))
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	return b
}

// wavFile wraps 16-bit mono PCM at speechRate in a WAV header.
func wavFile(pcm []byte) []byte {
	b := make([]byte, 44, 44+len(pcm))
	copy(b, "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+len(pcm)))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], speechRate)
	binary.LittleEndian.PutUint32(b[28:], 2*speechRate)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(len(pcm)))
	return append(b, pcm...)
}

// audioMillis is how long an audio file plays: from a PCM WAV's header
// and data, as Tollgate measures it; other files at assumedByteRate.
func audioMillis(b []byte) int64 {
	byteRate, data := uint64(assumedByteRate), b
	if len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WAVE" {
		for i := 12; i+8 <= len(b); {
			size := int(binary.LittleEndian.Uint32(b[i+4:]))
			switch string(b[i : i+4]) {
			case "fmt ":
				if i+8+16 <= len(b) {
					byteRate = uint64(binary.LittleEndian.Uint32(b[i+8+8:]))
				}
			case "data":
				data = b[i+8:] // to the end, whatever the size says
				i = len(b)
				continue
			}
			i += 8 + size + size%2
		}
		if byteRate == 0 {
			byteRate = assumedByteRate
		}
	}
	return int64((uint64(len(data))*1000 + byteRate - 1) / byteRate)
}

// transcribedText is the demo's transcript of any audio.
func transcribedText(ms int64) string {
	return fmt.Sprintf("This is the Tollgate demo upstream's transcript of %s seconds of audio.", seconds(ms))
}

// seconds writes milliseconds as a JSON number of seconds ("8.47").
func seconds(ms int64) string {
	s := strconv.FormatInt(ms/1000, 10)
	if f := ms % 1000; f != 0 {
		s += strings.TrimRight(fmt.Sprintf(".%03d", f), "0")
	}
	return s
}

// transcription answers /v1/audio/transcriptions and /translations.
func (h *handler) transcription(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
	if err := r.ParseMultipartForm(maxUpload); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "a multipart form with a file is required: "+err.Error())
		return
	}
	f, _, err := r.FormFile("file")
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "file is required")
		return
	}
	audio, err := io.ReadAll(f)
	f.Close()
	if err != nil || len(audio) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "the file could not be read, or is empty")
		return
	}
	ms := audioMillis(audio)
	text := transcribedText(ms)
	usage := map[string]any{"type": "duration", "seconds": json.Number(seconds(ms))}
	switch format := r.FormValue("response_format"); format {
	case "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, text+"\n")
	case "srt", "vtt":
		end := fmt.Sprintf("%02d:%02d:%02d,%03d", ms/3_600_000, ms/60_000%60, ms/1000%60, ms%1000)
		if format == "srt" {
			w.Header().Set("Content-Type", "application/x-subrip; charset=utf-8")
			_, _ = fmt.Fprintf(w, "1\n00:00:00,000 --> %s\n%s\n\n", end, text)
			return
		}
		w.Header().Set("Content-Type", "text/vtt; charset=utf-8")
		_, _ = fmt.Fprintf(w, "WEBVTT\n\n00:00:00.000 --> %s\n%s\n\n", strings.Replace(end, ",", ".", 1), text)
	case "verbose_json":
		task := "transcribe"
		if strings.HasSuffix(r.URL.Path, "/translations") {
			task = "translate"
		}
		writeJSON(w, http.StatusOK, map[string]any{"task": task, "language": "english",
			"duration": json.Number(seconds(ms)), "text": text, "usage": usage,
			"segments": []map[string]any{{"id": 0, "start": 0, "end": json.Number(seconds(ms)), "text": text}}})
	default:
		writeJSON(w, http.StatusOK, map[string]any{"text": text, "usage": usage})
	}
}
