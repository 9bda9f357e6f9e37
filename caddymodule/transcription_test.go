package caddymodule_test

import (
	"bytes"
	"context"
	"mime/multipart"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tollgate/tollgate/metering"
)

// A transcription answered as text (no usage) is charged the duration of
// the uploaded audio, measured from the file, not the route's audio_seconds
// cap; the cap applies only to a file that cannot be measured, and the
// ledger says so.
func TestTranscriptionChargedByMeasuredDuration(t *testing.T) {
	w := startWorld(t, meteredConfig, "whisper")
	ctx := context.Background()
	perSecond := metering.Price{Model: "whisper", PerSecond: 100 * metering.Micro} // 0.1 credit per ms
	_, err := w.b.Engine.PutPrice(ctx, "test", perSecond)
	require.NoError(t, err)
	start := 100_000 * metering.Micro
	key := w.user(t, "ann", start)

	send := func(name string, audio []byte) {
		t.Helper()
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		require.NoError(t, mw.WriteField("model", "whisper"))
		require.NoError(t, mw.WriteField("response_format", "text"))
		fw, err := mw.CreateFormFile("file", name)
		require.NoError(t, err)
		_, err = fw.Write(audio)
		require.NoError(t, err)
		require.NoError(t, mw.Close())
		status, e := w.send(t, "POST", "/v1/audio/transcriptions", key, mw.FormDataContentType(), buf.Bytes())
		require.Equal(t, 200, status, "%+v", e)
	}

	wav, err := os.ReadFile("../metering/audio/testdata/speech.wav") // 1.2 s of speech
	require.NoError(t, err)
	send("speech.wav", wav)
	require.Equal(t, start-120*metering.Micro, w.settled(t, "ann"), "1.2 s at 100 credits a second")

	// Not audio Tollgate can read: the route's cap (600 s), and the event says why.
	send("noise.mp3", bytes.Repeat([]byte{0x55}, 4096))
	require.Equal(t, start-120*metering.Micro-60_000*metering.Micro, w.settled(t, "ann"))
	w.b.Drain(t)
	var note string
	require.NoError(t, w.b.DB.QueryRow(ctx, `SELECT coalesce(note, '') FROM events
		WHERE kind = 'usage' AND model = 'whisper' ORDER BY occurred_at DESC, event_id DESC LIMIT 1`).Scan(&note))
	require.Contains(t, note, "audio duration unknown")
}
