package audio

import (
	"bytes"
	"sort"
)

// WebM / Matroska (Opus, Vorbis). Block timestamps and the Duration
// element are claims; a decoder plays every frame of every block of an
// audio track, whose durations the frames fix (codecs.go). Two passes:
//
//  1. The structure: each Segment's TimecodeScale, Duration and tracks,
//     walking masters inline so unknown sizes (live recordings) need no
//     special case, and resynchronising on the next level-1 ID after an
//     element that cannot be read, as FFmpeg does.
//  2. The blocks: a walk from every Cluster ID anywhere in the file, not
//     just those the structure reaches, so a cluster hidden behind a
//     broken or oversized element still counts. Walks mark the element
//     positions they visit and stop at one already visited, so each byte
//     starts at most one element: linear time. A chance Cluster ID is one
//     in 2^32 positions.
//
// Each Segment (concatenated files have several) counts the larger of its
// claims (Duration; the last block's timestamp plus its duration) and the
// sum of its audio tracks' frames, and segments add up. An audio track
// with another codec, or with content encodings (compressed or encrypted
// frames), makes the file unsupported.

const (
	idEBML          = 0x1A45DFA3
	idSegment       = 0x18538067
	idInfo          = 0x1549A966
	idTimecodeScale = 0x2AD7B1
	idDuration      = 0x4489
	idTracks        = 0x1654AE6B
	idTrackEntry    = 0xAE
	idTrackNumber   = 0xD7
	idTrackType     = 0x83
	idCodecID       = 0x86
	idCodecPrivate  = 0x63A2
	idDefaultDur    = 0x23E383
	idEncodings     = 0x6D80
	idCluster       = 0x1F43B675
	idTimecode      = 0xE7
	idSimpleBlock   = 0xA3
	idBlockGroup    = 0xA0
	idBlock         = 0xA1
	idBlockDuration = 0x9B
	idCues          = 0x1C53BB6B
	idTags          = 0x1254C367
	idChapters      = 0x1043A770
	idAttachments   = 0x1941A469
	idSeekHead      = 0x114D9B74

	maxWebMTracks = 64
)

type mkvCodec int

const (
	mkvOther mkvCodec = iota
	mkvOpus
	mkvVorbis
)

type mkvTrack struct {
	number, kind uint64
	codecID      string
	private      []byte
	encoded      bool
	defaultDur   uint64 // ns per frame, a claim
	codec        mkvCodec
	vorbis       vorbisInfo
	samples      uint64
}

func (t *mkvTrack) audio() bool {
	return t.kind == 2 || (t.kind == 0 && len(t.codecID) > 1 && t.codecID[:2] == "A_")
}

func (t *mkvTrack) millis() millis {
	switch t.codec {
	case mkvOpus:
		return samplesToMillis(t.samples, 48000)
	case mkvVorbis:
		return samplesToMillis(t.samples, t.vorbis.rate)
	}
	return 0
}

type mkvSegment struct {
	start    int
	scale    uint64 // ns per timestamp unit
	claim    millis // block ends, and Duration once the scale is known
	duration []byte // the Duration element, read at the segment's scale
	list     []*mkvTrack
	byNumber map[uint64]*mkvTrack
}

func webmDuration(b []byte) (millis, error) {
	segs, err := webmStructure(b)
	if err != nil {
		return 0, err
	}
	audio := false
	for _, s := range segs {
		for _, t := range s.byNumber {
			audio = audio || t.codec != mkvOther
		}
	}
	if !audio {
		return 0, malformed("no audio track")
	}
	webmBlocks(b, segs)
	var total millis
	for _, s := range segs {
		var sum millis
		for _, t := range s.byNumber {
			sum = sum.add(t.millis())
		}
		total = total.add(max(sum, s.claim))
	}
	return total, nil
}

// webmStructure is pass 1.
func webmStructure(b []byte) ([]*mkvSegment, error) {
	var segs []*mkvSegment
	var seg *mkvSegment
	var track *mkvTrack
	tracks := 0
	resync := newFinder(b, be32bytes(idSegment), be32bytes(idInfo), be32bytes(idTracks), be32bytes(idCluster))
	for pos := 0; pos < len(b); {
		e, ok := readEBMLElement(b[pos:])
		if !ok {
			if pos = resync.from(pos + 1); pos < 0 {
				break
			}
			continue
		}
		switch e.id {
		case idSegment:
			seg = &mkvSegment{start: pos, scale: 1_000_000}
			segs = append(segs, seg)
			track = nil
			pos += e.header
			continue
		case idTrackEntry:
			track = nil
			if seg != nil {
				if tracks == maxWebMTracks {
					return nil, unsupported("more than %d tracks", maxWebMTracks)
				}
				tracks++
				track = &mkvTrack{}
				seg.list = append(seg.list, track)
			}
			pos += e.header
			continue
		case idInfo, idTracks, idCluster, idBlockGroup, 0xE1 /* Audio */ :
			pos += e.header
			continue
		}
		if e.unknown { // a leaf cannot have an unknown size
			if pos = resync.from(pos + 1); pos < 0 {
				break
			}
			continue
		}
		p, end := e.payload(b, pos)
		switch {
		case seg == nil:
		case e.id == idTimecodeScale:
			if v := ebmlUint(p); v > 0 {
				seg.scale = v
			}
		case e.id == idDuration:
			seg.duration = p
		case track == nil:
		case e.id == idTrackNumber:
			track.number = ebmlUint(p)
		case e.id == idTrackType:
			track.kind = ebmlUint(p)
		case e.id == idCodecID:
			track.codecID = string(p)
		case e.id == idCodecPrivate:
			track.private = p
		case e.id == idDefaultDur:
			track.defaultDur = ebmlUint(p)
		case e.id == idEncodings:
			track.encoded = true
		}
		if end > uint64(len(b)) {
			break
		}
		pos = int(end)
	}
	for _, s := range segs {
		if err := s.index(); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// index reads the Duration claim (its scale may come after it), checks the
// segment's audio tracks and maps them by number.
func (s *mkvSegment) index() error {
	s.claim = max(s.claim, ebmlFloatMillis(s.duration, s.scale))
	s.byNumber = map[uint64]*mkvTrack{}
	for _, t := range s.list {
		if !t.audio() {
			continue
		}
		switch t.codecID {
		case "A_OPUS":
			t.codec = mkvOpus
		case "A_VORBIS":
			v, ok := vorbisFromPrivate(t.private)
			if !ok {
				return malformed("Vorbis track without identification header")
			}
			t.codec, t.vorbis = mkvVorbis, v
		default:
			return unsupported("Matroska audio codec %s", quoted(t.codecID))
		}
		if t.encoded {
			return unsupported("Matroska content encoding on an audio track")
		}
		if s.byNumber[t.number] != nil {
			return unsupported("Matroska track number used twice")
		}
		s.byNumber[t.number] = t
	}
	return nil
}

// vorbisFromPrivate reads a Vorbis CodecPrivate: the identification,
// comment and setup header packets, Xiph-laced. A setup header that cannot
// be parsed leaves the modes unknown (every packet bounded as long).
func vorbisFromPrivate(p []byte) (vorbisInfo, bool) {
	if len(p) < 1 || p[0] != 2 {
		return vorbisInfo{}, false
	}
	var sizes [2]uint64
	i := 1
	for k := range sizes {
		for i < len(p) && p[i] == 255 {
			sizes[k] += 255
			i++
		}
		if i == len(p) {
			return vorbisInfo{}, false
		}
		sizes[k] += uint64(p[i])
		i++
	}
	rest := p[i:]
	if sizes[0] > uint64(len(rest)) {
		return vorbisInfo{}, false
	}
	v, ok := parseVorbisID(rest[:sizes[0]])
	if !ok {
		return vorbisInfo{}, false
	}
	if setupAt := sizes[0] + sizes[1]; setupAt <= uint64(len(rest)) {
		v.long, _ = vorbisModes(rest[setupAt:], v.channels)
	}
	return v, true
}

// webmBlocks is pass 2.
func webmBlocks(b []byte, segs []*mkvSegment) {
	visited := make([]uint64, len(b)/64+1)
	seen := func(pos int) bool {
		w, bit := pos/64, uint64(1)<<(pos%64)
		was := visited[w]&bit != 0
		visited[w] |= bit
		return was
	}
	cluster := be32bytes(idCluster)
	for i := 0; ; {
		k := bytes.Index(b[i:], cluster)
		if k < 0 {
			return
		}
		pos := i + k
		i = pos + 1
		// The segment a cluster belongs to: the last one starting before it.
		j := sort.Search(len(segs), func(j int) bool { return segs[j].start > pos }) - 1
		if j < 0 || seen(pos) {
			continue
		}
		webmCluster(b, pos, segs[j], seen)
	}
}

// webmCluster walks one cluster's children from the cluster at pos.
func webmCluster(b []byte, pos int, seg *mkvSegment, seen func(int) bool) {
	c, _ := readEBMLElement(b[pos:])
	end := uint64(len(b))
	if !c.unknown {
		end = min(end, satAdd(uint64(pos+c.header), c.size))
	}
	var timecode uint64
	for at := uint64(pos + c.header); at < end; {
		p := int(at)
		if p != pos && seen(p) {
			return
		}
		e, ok := readEBMLElement(b[p:])
		if !ok {
			return
		}
		switch e.id {
		case idCluster, idSegment, idEBML, idInfo, idTracks, idCues, idTags, idChapters, idAttachments, idSeekHead:
			return // the cluster ended (unknown size) or the structure broke
		case idBlockGroup:
			if e.unknown {
				return
			}
			body, next := e.payload(b, p)
			webmGroup(b, p+e.header, body, seg, timecode, seen)
			at = next
			continue
		}
		if e.unknown {
			return
		}
		body, next := e.payload(b, p)
		switch e.id {
		case idTimecode:
			timecode = ebmlUint(body)
		case idSimpleBlock:
			seg.block(body, timecode, 0, false)
		}
		at = next
	}
}

// webmGroup reads a BlockGroup's Block and BlockDuration.
func webmGroup(b []byte, start int, body []byte, seg *mkvSegment, timecode uint64, seen func(int) bool) {
	var block []byte
	var dur uint64
	hasDur := false
	for off := 0; off < len(body); {
		if seen(start + off) {
			return
		}
		e, ok := readEBMLElement(body[off:])
		if !ok || e.unknown {
			break
		}
		p, next := e.payload(body, off)
		switch e.id {
		case idBlock:
			block = p
		case idBlockDuration:
			dur, hasDur = ebmlUint(p), true
		}
		if next > uint64(len(body)) {
			break
		}
		off = int(next)
	}
	if block != nil {
		seg.block(block, timecode, dur, hasDur)
	}
}

// block counts a (Simple)Block's frames and raises the segment's claim to
// its end time.
func (s *mkvSegment) block(p []byte, timecode, dur uint64, hasDur bool) {
	number, n, _, ok := ebmlVint(p)
	if !ok || len(p) < n+3 {
		return
	}
	t := s.byNumber[number]
	if t == nil {
		return
	}
	ts := timecode
	if rel := int16(be16(p[n:])); rel >= 0 {
		ts = satAdd(ts, uint64(rel))
	} else if uint64(-int64(rel)) <= ts {
		ts -= uint64(-int64(rel))
	} else {
		ts = 0
	}
	frames := 0
	mkvFrames(p[n+2], p[n+3:], func(f []byte) {
		frames++
		switch t.codec {
		case mkvOpus:
			t.samples = satAdd(t.samples, opusSamples(f))
		case mkvVorbis:
			t.samples = satAdd(t.samples, t.vorbis.vorbisSamples(f))
		}
	})
	endNs := satMul(ts, s.scale)
	if hasDur {
		endNs = satAdd(endNs, satMul(dur, s.scale))
	} else {
		endNs = satAdd(endNs, satMul(t.defaultDur, uint64(frames)))
	}
	s.claim = max(s.claim, millis(mulDivCeil(endNs, 1, 1_000_000, uint64(maxMillis))))
}

// mkvFrames calls f with each frame of a block's data, by its lacing
// (flags bits 1-2): none, Xiph, fixed-size or EBML. At most 256 frames; a
// frame the sizes place past the data is empty.
func mkvFrames(flags byte, d []byte, f func([]byte)) {
	lacing := flags >> 1 & 3
	if lacing == 0 {
		f(d)
		return
	}
	if len(d) == 0 {
		return
	}
	count := int(d[0]) + 1
	d = d[1:]
	var sizes [256]uint64
	switch lacing {
	case 1: // Xiph
		for k := 0; k < count-1; k++ {
			for len(d) > 0 {
				c := d[0]
				d = d[1:]
				sizes[k] += uint64(c)
				if c != 255 {
					break
				}
			}
		}
	case 3: // EBML: a size, then signed differences
		v, n, _, ok := ebmlVint(d)
		if !ok {
			return
		}
		sizes[0], d = min(v, uint64(len(d))), d[n:]
		for k := 1; k < count-1; k++ {
			v, n, _, ok := ebmlVint(d)
			if !ok {
				return
			}
			d = d[n:]
			diff := int64(v) - (int64(1)<<(7*n-1) - 1) // the vint's value minus its bias
			sizes[k] = uint64(min(max(int64(sizes[k-1])+diff, 0), int64(len(d))))
		}
	case 2: // fixed
		for k := 0; k < count-1; k++ {
			sizes[k] = uint64(len(d) / count)
		}
	}
	off := uint64(0)
	for k := 0; k < count-1; k++ {
		f(d[min(off, uint64(len(d))):min(satAdd(off, sizes[k]), uint64(len(d)))])
		off = satAdd(off, sizes[k])
	}
	f(d[min(off, uint64(len(d))):])
}

func be32bytes(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
