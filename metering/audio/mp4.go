package audio

// MP4 / M4A / QuickTime. A decoder plays the samples the sample tables
// list, and each sample of an AAC track decodes to one frame of (at most)
// 1024 samples at the AudioSpecificConfig's core rate, whatever the time
// deltas (stts) say. The measurement for an audio track is therefore its
// sample count (the larger of stsz's and stts's, plus every track run of
// every movie fragment) times the codec's frame length over its rate. An
// edit list may play a span of samples more than once, so the measurement
// is multiplied by the number of non-empty edits (1 for real files).
//
// Claims are mvhd's, mehd's, tkhd's and mdhd's durations, the sums of the
// stts deltas, of the track runs' durations and of the edits, and the end
// of the last fragment (tfdt plus its runs); the result is the largest of
// them and the sum of the audio tracks' measurements (every audio track,
// as a decoder may pick any). A track is audio when its handler is 'soun'
// or its sample description is an audio format; one whose format has no
// known frame length (ALAC, Opus, AC-3, PCM, encrypted, ...) makes the
// whole file unsupported. The box walk is explicit and bounded in depth;
// every count is read from what the file holds, never used to allocate.

const maxMP4Tracks = 64

type mp4Track struct {
	movieScale            uint64 // the timescale of the moov it is in
	id                    uint64
	handlerSound          bool
	audioEntry            bool   // its sample description is an audio format
	frameLen, rate        uint64 // the longest frame among its descriptions
	err                   error  // an audio format whose frames are not known
	scale                 uint64 // mdhd timescale
	mdhdDur, tkhdDur      uint64
	sttsCount, sttsDur    uint64
	stszCount             uint64
	editSum, edits        uint64
	fragSamples, fragDur  uint64
	fragEnd, trexDuration uint64
}

func (t *mp4Track) isAudio() bool { return t.handlerSound || t.audioEntry }

func (t *mp4Track) bound() millis {
	mult := max(t.edits, 1)
	samples := satAdd(max(t.stszCount, t.sttsCount), t.fragSamples)
	d := samplesToMillis(satMul(satMul(samples, t.frameLen), mult), t.rate)
	if t.scale > 0 {
		d = max(d, samplesToMillis(t.mdhdDur, t.scale), samplesToMillis(satAdd(t.sttsDur, t.fragDur), t.scale),
			samplesToMillis(t.fragEnd, t.scale))
	}
	if t.movieScale > 0 {
		d = max(d, samplesToMillis(t.tkhdDur, t.movieScale), samplesToMillis(t.editSum, t.movieScale))
	}
	return d
}

type mp4File struct {
	tracks []*mp4Track
	byID   map[uint64]*mp4Track
	claim  millis // mvhd, mehd
}

func mp4Duration(b []byte) (millis, error) {
	f := &mp4File{byID: map[uint64]*mp4Track{}}
	// Movies first (fragments refer to their tracks), then fragments.
	err := mp4Walk(b, func(typ string, body []byte) error {
		if typ == "moov" {
			return f.moov(body)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	err = mp4Walk(b, func(typ string, body []byte) error {
		if typ == "moof" {
			f.moof(body)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var sum millis
	audio := false
	for _, t := range f.tracks {
		if !t.isAudio() {
			continue
		}
		if t.err != nil {
			return 0, t.err
		}
		if t.rate == 0 {
			return 0, malformed("audio track without a sample rate")
		}
		audio = true
		sum = sum.add(t.bound())
	}
	if !audio {
		return 0, malformed("no audio track")
	}
	return max(sum, f.claim), nil
}

// mp4Walk calls f for each box in b, with its body cut at the end of b (a
// file cut short). A header that cannot be read (too short, a size below
// its own length) ends the walk: nothing after it can be located, by this
// walk or a decoder's. Only f's errors are returned.
func mp4Walk(b []byte, f func(typ string, body []byte) error) error {
	for len(b) >= 8 {
		size, hdr := be32(b), uint64(8)
		typ := string(b[4:8])
		switch size {
		case 0: // to the end
			size = uint64(len(b))
		case 1:
			if len(b) < 16 {
				return nil
			}
			size, hdr = be64(b[8:]), 16
		}
		if size < hdr {
			return nil
		}
		end := min(size, uint64(len(b)))
		if err := f(typ, b[hdr:end]); err != nil {
			return err
		}
		b = b[end:]
	}
	return nil
}

// child returns the body of the first box of type typ in b (nil if none).
func child(b []byte, typ string) []byte {
	var found []byte
	_ = mp4Walk(b, func(t string, body []byte) error {
		if found == nil && t == typ {
			found = body
		}
		return nil
	})
	return found
}

// fullBox splits a full box body into version, flags and the rest.
func fullBox(b []byte) (version byte, flags uint64, rest []byte, ok bool) {
	if len(b) < 4 {
		return 0, 0, nil, false
	}
	return b[0], be24(b[1:]), b[4:], true
}

func (f *mp4File) moov(b []byte) error {
	var scale uint64
	if v, _, r, ok := fullBox(child(b, "mvhd")); ok {
		var dur uint64
		switch {
		case v == 1 && len(r) >= 28:
			scale, dur = be32(r[16:]), be64(r[20:])
		case v != 1 && len(r) >= 16:
			scale, dur = be32(r[8:]), be32(r[12:])
		}
		if scale > 0 {
			f.claim = max(f.claim, samplesToMillis(dur, scale))
		}
	}
	mvex := child(b, "mvex")
	if v, _, r, ok := fullBox(child(mvex, "mehd")); ok && scale > 0 {
		var dur uint64
		switch {
		case v == 1 && len(r) >= 8:
			dur = be64(r)
		case v != 1 && len(r) >= 4:
			dur = be32(r)
		}
		f.claim = max(f.claim, samplesToMillis(dur, scale))
	}
	err := mp4Walk(b, func(typ string, body []byte) error {
		if typ != "trak" {
			return nil
		}
		if len(f.tracks) == maxMP4Tracks {
			return unsupported("more than %d tracks", maxMP4Tracks)
		}
		t := &mp4Track{movieScale: scale}
		t.trak(body)
		f.tracks = append(f.tracks, t)
		f.byID[t.id] = t
		return nil
	})
	if err != nil {
		return err
	}
	// Fragment defaults, once the tracks are known.
	return mp4Walk(mvex, func(typ string, body []byte) error {
		if _, _, r, ok := fullBox(body); ok && typ == "trex" && len(r) >= 12 {
			if t := f.byID[be32(r)]; t != nil {
				t.trexDuration = be32(r[8:])
			}
		}
		return nil
	})
}

func (t *mp4Track) trak(b []byte) {
	if v, _, r, ok := fullBox(child(b, "tkhd")); ok {
		switch {
		case v == 1 && len(r) >= 32:
			t.id, t.tkhdDur = be32(r[16:]), be64(r[24:])
		case v != 1 && len(r) >= 20:
			t.id, t.tkhdDur = be32(r[8:]), be32(r[16:])
		}
	}
	if v, _, r, ok := fullBox(child(child(b, "edts"), "elst")); ok && len(r) >= 4 {
		entry := 12
		if v == 1 {
			entry = 20
		}
		r = r[4:] // the entry count; the entries present are what count
		for ; len(r) >= entry; r = r[entry:] {
			if v == 1 {
				t.editSum = satAdd(t.editSum, be64(r))
				if be64(r[8:]) != 1<<64-1 { // media_time -1: an empty edit
					t.edits++
				}
			} else {
				t.editSum = satAdd(t.editSum, be32(r))
				if be32(r[4:]) != 1<<32-1 {
					t.edits++
				}
			}
		}
	}
	mdia := child(b, "mdia")
	if v, _, r, ok := fullBox(child(mdia, "mdhd")); ok {
		switch {
		case v == 1 && len(r) >= 28:
			t.scale, t.mdhdDur = be32(r[16:]), be64(r[20:])
		case v != 1 && len(r) >= 16:
			t.scale, t.mdhdDur = be32(r[8:]), be32(r[12:])
		}
	}
	if _, _, r, ok := fullBox(child(mdia, "hdlr")); ok && len(r) >= 8 {
		t.handlerSound = string(r[4:8]) == "soun"
	}
	stbl := child(child(mdia, "minf"), "stbl")
	if _, _, r, ok := fullBox(child(stbl, "stsd")); ok && len(r) >= 4 {
		_ = mp4Walk(r[4:], func(typ string, entry []byte) error {
			t.sampleEntry(typ, entry)
			return nil
		})
	}
	if _, _, r, ok := fullBox(child(stbl, "stts")); ok && len(r) >= 4 {
		for r = r[4:]; len(r) >= 8; r = r[8:] {
			n := be32(r)
			t.sttsCount = satAdd(t.sttsCount, n)
			t.sttsDur = satAdd(t.sttsDur, satMul(n, be32(r[4:])))
		}
	}
	if _, _, r, ok := fullBox(child(stbl, "stsz")); ok && len(r) >= 8 {
		t.stszCount = be32(r[4:])
	}
	if _, _, r, ok := fullBox(child(stbl, "stz2")); ok && len(r) >= 8 {
		t.stszCount = max(t.stszCount, be32(r[4:]))
	}
}

// sampleEntry reads one sample description of the track.
func (t *mp4Track) sampleEntry(typ string, e []byte) {
	var frameLen, rate uint64
	switch typ {
	case "mp4a", ".mp3":
		t.audioEntry = true
		if len(e) < 28 {
			t.err = malformed("audio sample entry cut short")
			return
		}
		entryRate := be32(e[24:]) >> 16
		childrenAt := 28
		switch be16(e[8:]) { // QuickTime sound description version
		case 1:
			childrenAt = 44
		case 2:
			childrenAt, entryRate = 64, 0 // v2 states its rate as a float; the esds has it
		}
		frameLen, rate = 1152, entryRate
		if typ == "mp4a" {
			var err error
			frameLen, rate, err = mp4aFrames(e[min(childrenAt, len(e)):], entryRate)
			if err != nil {
				t.err = err
				return
			}
		}
	default:
		if mp4AudioFormats[typ] {
			t.audioEntry = true
			t.err = unsupported("MP4 audio format %s", quoted(typ))
		}
		return
	}
	if rate == 0 {
		t.err = malformed("audio sample entry without a rate")
		return
	}
	// Keep the longest frame: frameLen/rate > t.frameLen/t.rate.
	if t.rate == 0 || frameLen*t.rate > t.frameLen*rate {
		t.frameLen, t.rate = frameLen, rate
	}
}

// mp4AudioFormats are sample description formats that are audio but whose
// frame lengths are not known here.
var mp4AudioFormats = map[string]bool{
	"alac": true, "Opus": true, "fLaC": true, "ac-3": true, "ec-3": true, "ac-4": true,
	"enca": true, "samr": true, "sawb": true, "sawp": true, "mha1": true, "mhm1": true,
	"lpcm": true, "sowt": true, "twos": true, "ipcm": true, "fpcm": true, "raw ": true,
	"in24": true, "in32": true, "fl32": true, "fl64": true, "ulaw": true, "alaw": true,
	"ima4": true, "dtsc": true, "dtsh": true, "dtsl": true, "dtse": true, "mlpa": true,
	"QDM2": true, "Qclp": true, "agsm": true, "spex": true, "MAC3": true, "MAC6": true,
}

// mp4aFrames reads the esds of an mp4a description (directly among its
// children or inside a QuickTime 'wave' box) and returns its frame length
// and rate.
func mp4aFrames(children []byte, entryRate uint64) (frameLen, rate uint64, err error) {
	esds := child(children, "esds")
	if esds == nil {
		esds = child(child(children, "wave"), "esds")
	}
	oti, asc, ok := parseESDS(esds)
	if !ok {
		return 0, 0, malformed("mp4a without a readable esds")
	}
	switch oti {
	case 0x40, 0x66, 0x67, 0x68: // MPEG-4 audio, MPEG-2 AAC
		if asc == nil {
			return 1024, entryRate, nil
		}
		return parseASC(asc)
	case 0x69, 0x6B: // MPEG-2, MPEG-1 audio (layers I-III)
		return 1152, entryRate, nil
	}
	return 0, 0, unsupported("MP4 object type 0x%02x", oti)
}

// parseESDS returns the object type indication and the decoder specific
// info (the AudioSpecificConfig; nil if absent) of an esds box body.
func parseESDS(b []byte) (oti byte, asc []byte, ok bool) {
	_, _, r, ok := fullBox(b)
	if !ok {
		return 0, nil, false
	}
	tag, es, ok := mp4Descriptor(r)
	if !ok || tag != 0x03 || len(es) < 3 {
		return 0, nil, false
	}
	flags := es[2]
	es = es[3:]
	if flags&0x80 != 0 { // stream dependence
		es = es[min(2, len(es)):]
	}
	if flags&0x40 != 0 && len(es) > 0 { // URL
		es = es[min(1+int(es[0]), len(es)):]
	}
	if flags&0x20 != 0 { // OCR stream
		es = es[min(2, len(es)):]
	}
	tag, dc, ok := mp4Descriptor(es)
	if !ok || tag != 0x04 || len(dc) < 13 {
		return 0, nil, false
	}
	if tag, dsi, ok := mp4Descriptor(dc[13:]); ok && tag == 0x05 {
		asc = dsi
	}
	return dc[0], asc, true
}

// mp4Descriptor reads an MPEG-4 descriptor: a tag, a size in one to four
// 7-bit groups, and its body (cut at the end of b).
func mp4Descriptor(b []byte) (tag byte, body []byte, ok bool) {
	if len(b) < 2 {
		return 0, nil, false
	}
	tag = b[0]
	size, i := uint64(0), 1
	for ; i <= 4; i++ {
		if i >= len(b) {
			return 0, nil, false
		}
		size = size<<7 | uint64(b[i]&0x7F)
		if b[i]&0x80 == 0 {
			break
		}
	}
	if i > 4 {
		return 0, nil, false
	}
	b = b[i+1:]
	return tag, b[:min(size, uint64(len(b)))], true
}

var ascRates = [13]uint64{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}

// parseASC reads an AudioSpecificConfig: the core object type and the
// core sampling rate (the first one; with SBR the output has twice the
// samples at twice the rate, the same duration).
func parseASC(b []byte) (frameLen, rate uint64, err error) {
	r := bitReader{b: b}
	objectType := func() uint64 {
		t := r.read(5)
		if t == 31 {
			t = 32 + r.read(6)
		}
		return t
	}
	frequency := func() uint64 {
		i := r.read(4)
		if i == 15 {
			return r.read(24)
		}
		if i < uint64(len(ascRates)) {
			return ascRates[i]
		}
		return 0
	}
	aot := objectType()
	rate = frequency()
	r.read(4) // channel configuration
	if aot == 5 || aot == 29 {
		frequency() // the SBR output rate
		aot = objectType()
	}
	if r.short || rate == 0 {
		return 0, 0, malformed("AudioSpecificConfig")
	}
	switch aot {
	case 1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23, 39: // AAC family: 1024 or fewer
		return 1024, rate, nil
	case 32, 33, 34: // MPEG-1/2 layers I-III
		return 1152, rate, nil
	}
	return 0, 0, unsupported("MPEG-4 audio object type %d", aot)
}

// bitReader reads big-endian bit fields; reading past the end gives zeros
// and sets short.
type bitReader struct {
	b     []byte
	pos   uint64
	short bool
}

func (r *bitReader) read(n int) uint64 {
	var v uint64
	for range n {
		byteAt := r.pos / 8
		if byteAt >= uint64(len(r.b)) {
			r.short = true
			return 0
		}
		v = v<<1 | uint64(r.b[byteAt]>>(7-r.pos%8))&1
		r.pos++
	}
	return v
}

// moof adds a movie fragment's track runs to their tracks. Fragments of a
// track no movie declares are not played by a decoder and are skipped.
func (f *mp4File) moof(b []byte) {
	_ = mp4Walk(b, func(typ string, traf []byte) error {
		if typ != "traf" {
			return nil
		}
		_, flags, r, ok := fullBox(child(traf, "tfhd"))
		if !ok || len(r) < 4 {
			return nil
		}
		t := f.byID[be32(r)]
		if t == nil {
			return nil
		}
		def := t.trexDuration
		off := 4
		for _, fl := range []struct {
			bit  uint64
			size int
		}{{0x01, 8}, {0x02, 4}} {
			if flags&fl.bit != 0 {
				off += fl.size
			}
		}
		if flags&0x08 != 0 && len(r) >= off+4 {
			def = be32(r[off:])
		}
		var base uint64
		if v, _, r, ok := fullBox(child(traf, "tfdt")); ok {
			switch {
			case v == 1 && len(r) >= 8:
				base = be64(r)
			case v != 1 && len(r) >= 4:
				base = be32(r)
			}
		}
		end := base
		_ = mp4Walk(traf, func(typ string, trun []byte) error {
			if typ == "trun" {
				end = satAdd(end, t.trun(trun, def))
			}
			return nil
		})
		t.fragEnd = max(t.fragEnd, end)
		return nil
	})
}

// trun adds a track run's samples and returns its duration.
func (t *mp4Track) trun(b []byte, def uint64) uint64 {
	_, flags, r, ok := fullBox(b)
	if !ok || len(r) < 4 {
		return 0
	}
	n := be32(r)
	t.fragSamples = satAdd(t.fragSamples, n)
	r = r[4:]
	if flags&0x01 != 0 { // data offset
		r = r[min(4, len(r)):]
	}
	if flags&0x04 != 0 { // first sample flags
		r = r[min(4, len(r)):]
	}
	var dur uint64
	if flags&0x100 == 0 {
		dur = satMul(n, def)
	} else {
		entry := 4
		for _, bit := range []uint64{0x200, 0x400, 0x800} {
			if flags&bit != 0 {
				entry += 4
			}
		}
		for i := uint64(0); i < n && len(r) >= entry; i++ {
			dur = satAdd(dur, be32(r))
			r = r[entry:]
		}
	}
	t.fragDur = satAdd(t.fragDur, dur)
	return dur
}
