#!/bin/sh
# Regenerates the audio fixtures of metering/audio's tests (Debian packages
# ffmpeg and espeak-ng). Each is about 1.2 s of speech, kept to a few KB by
# a low rate; durations.txt records each file's duration as FFmpeg decodes
# it (samples out of the decoder, in ms rounded up), which the tests hold
# every measurement to as a lower bound. Encoders change between versions,
# so rerunning this changes the files; the tests read durations.txt rather
# than numbers of their own.
set -eu
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

espeak-ng -s 190 -w "$tmp/speech.wav" "Tollgate measures audio."
src="$tmp/src.wav"
ffmpeg -v error -y -i "$tmp/speech.wav" -t 1.2 -ar 16000 -ac 1 "$src"

enc() { out=$1; shift; ffmpeg -v error -y -i "$src" -map_metadata -1 -fflags +bitexact -flags:a +bitexact "$@" "$out"; }
enc speech.wav -ar 8000 -c:a pcm_u8
enc speech.mp3 -ar 16000 -c:a libmp3lame -b:a 24k
enc speech.flac -t 0.5 -ar 8000 -sample_fmt s16 -c:a flac
enc speech.opus.ogg -c:a libopus -b:a 12k
enc speech.vorbis.ogg -ar 8000 -c:a libvorbis -q:a 0
enc speech.m4a -c:a aac -b:a 24k
enc speech.frag.mp4 -c:a aac -b:a 24k -movflags frag_keyframe+empty_moov -frag_duration 300000
enc speech.opus.webm -c:a libopus -b:a 12k
enc speech.vorbis.webm -ar 8000 -c:a libvorbis -q:a 0

: > durations.txt
for f in speech.wav speech.mp3 speech.flac speech.opus.ogg speech.vorbis.ogg speech.m4a speech.frag.mp4 speech.opus.webm speech.vorbis.webm; do
	# Decode to raw PCM at the stream's own rate; samples / rate is what a
	# transcriber gets.
	rate=$(ffprobe -v error -select_streams a:0 -show_entries stream=sample_rate -of csv=p=0 "$f")
	bytes=$(ffmpeg -v error -i "$f" -f s16le -ac 1 -ar "$rate" - | wc -c)
	echo "$f $(( (bytes / 2 * 1000 + rate - 1) / rate ))" >> durations.txt
done
cat durations.txt

# Unsupported codecs in supported containers: the result must be "unknown".
ffmpeg -v error -y -i "$src" -t 0.3 -map_metadata -1 -fflags +bitexact -ar 8000 -c:a adpcm_ima_wav speech.adpcm.wav
ffmpeg -v error -y -i "$src" -t 0.3 -map_metadata -1 -fflags +bitexact -ar 8000 -c:a alac speech.alac.m4a
