package audio

import "bytes"

// Ogg (Opus, Vorbis). A page's granule position is a claim; what a decoder
// plays is the packets, whose durations the packets themselves fix (see
// codecs.go). The measurement walks every "OggS" in the file, not just the
// chain of pages one parser would follow, so a page hidden inside another
// is still counted (a chance "OggS" is one in 2^32 positions); the CRC is
// not checked, since counting a page a decoder would drop only over-counts.
// Each page's work is bounded by its 255-entry segment table.
//
// Every logical stream counts: chained streams (one after another, as when
// files are concatenated) and multiplexed ones alike add up, each at the
// larger of its largest granule and its packets. Packets of a serial whose
// first page was never seen are counted at the largest per-packet bound of
// the codecs in the file, since some demuxers hand them to the stream they
// replace. Skeleton and Theora streams are not audio and are ignored; any
// other codec (FLAC in Ogg, Speex, ...) is unsupported.

const maxOggStreams = 64 // far more than any real file; bounds the map

type oggCodec int

const (
	oggIgnored oggCodec = iota
	oggOpus
	oggVorbis
)

type oggStream struct {
	codec   oggCodec
	vorbis  vorbisInfo
	granule uint64 // the largest granule position, in samples
	samples uint64 // the packets' samples
	// Vorbis setup header assembly, from the chain of pages only.
	started int    // packets begun so far
	setup   []byte // the third packet, while it is assembled
	done    bool   // the setup header was parsed, or cannot be
}

func (s *oggStream) millis() millis {
	switch s.codec {
	case oggOpus:
		return samplesToMillis(max(s.granule, s.samples), 48000)
	case oggVorbis:
		return samplesToMillis(max(s.granule, s.samples), s.vorbis.rate)
	}
	return 0
}

// oggPage is a page header's fields and the packets that start on it.
type oggPage struct {
	bos     bool
	granule uint64
	serial  uint64
	body    []byte // up to the page's end or the file's
	lacing  []byte
	cont    bool // the first segment continues a packet from an earlier page
}

func parseOggPage(p []byte) (oggPage, bool) {
	if len(p) < 27 || p[4] != 0 {
		return oggPage{}, false
	}
	n := int(p[26])
	if len(p) < 27+n {
		return oggPage{}, false
	}
	return oggPage{
		bos:     p[5]&0x02 != 0,
		cont:    p[5]&0x01 != 0,
		granule: le64(p[6:]),
		serial:  le32(p[14:]),
		lacing:  p[27 : 27+n],
		body:    p[27+n:],
	}, true
}

// segments calls f with each segment of the page (cut at the file's end)
// and whether a packet begins with it.
func (pg oggPage) segments(f func(seg []byte, begins bool)) {
	off := 0
	begins := !pg.cont
	for _, l := range pg.lacing {
		f(pg.body[min(off, len(pg.body)):min(off+int(l), len(pg.body))], begins)
		off += int(l)
		begins = l < 255 // a packet continues while its segments are 255 bytes long
	}
}

// packets calls f with the first segment of each packet that begins on the
// page: its first bytes, the only ones a packet's duration depends on.
func (pg oggPage) packets(f func([]byte)) {
	pg.segments(func(seg []byte, begins bool) {
		if begins {
			f(seg)
		}
	})
}

// length is the page's size as its header states it.
func (pg oggPage) length() int {
	n := 27 + len(pg.lacing)
	for _, l := range pg.lacing {
		n += int(l)
	}
	return n
}

// assemble feeds a Vorbis stream's setup header from a page of the chain;
// a page off the chain while the header is incomplete gives up on it.
func (s *oggStream) assemble(pg oggPage, inChain bool) {
	if s.codec != oggVorbis || s.done {
		return
	}
	if !inChain {
		s.done = true
		return
	}
	pg.segments(func(seg []byte, begins bool) {
		if s.done {
			return
		}
		if begins {
			s.started++
		}
		if s.started == 3 {
			s.setup = append(s.setup, seg...)
			if len(seg) < 255 { // the packet ends here
				s.vorbis.long, _ = vorbisModes(s.setup, s.vorbis.channels)
				s.setup, s.done = nil, true
			}
		}
	})
}

func oggDuration(b []byte) (millis, error) {
	streams := map[uint64]*oggStream{}
	var total millis
	var orphanOpus, orphanVorbis uint64 // samples, packets
	var opusSeen bool
	var vorbisRate, vorbisLong uint64 // the lowest rate, the longest block
	chainNext := 0                    // where a sequential reader looks for its next page
	crcBudget := 2 * len(b)           // bytes to check CRCs over; a real file needs len(b)
	for i := 0; ; {
		k := bytes.Index(b[i:], []byte("OggS"))
		if k < 0 {
			break
		}
		pos := i + k
		i = pos + 1
		pg, ok := parseOggPage(b[pos:])
		if !ok {
			continue
		}
		// The chain is the pages a sequential reader that checks CRCs
		// (libogg, FFmpeg) accepts; only its pages are trusted with the
		// setup header a decoder will use.
		// Checking the CRC of a page that fails it and then of every page
		// hidden inside it could be quadratic; past the budget no page is
		// on the chain, and Vorbis falls back to its long-block bound.
		inChain := false
		if pos >= chainNext && crcBudget > 0 {
			crcBudget -= pg.length()
			inChain = oggCRCOK(b[pos:], pg)
		}
		if inChain {
			chainNext = pos + pg.length()
		}
		if pg.bos {
			s, err := oggNewStream(pg)
			if err != nil {
				return 0, err
			}
			if old := streams[pg.serial]; old != nil {
				total = total.add(old.millis())
			} else if len(streams) == maxOggStreams {
				return 0, unsupported("more than %d Ogg streams", maxOggStreams)
			}
			streams[pg.serial] = s
			switch s.codec {
			case oggOpus:
				opusSeen = true
			case oggVorbis:
				if vorbisRate == 0 || s.vorbis.rate < vorbisRate {
					vorbisRate = s.vorbis.rate
				}
				vorbisLong = max(vorbisLong, s.vorbis.longBlock)
			}
		}
		s := streams[pg.serial]
		switch {
		case s == nil:
			pg.packets(func(p []byte) {
				if !isOpusHeader(p) {
					orphanOpus = satAdd(orphanOpus, opusSamples(p))
				}
				if len(p) > 0 && p[0]&1 == 0 {
					orphanVorbis++
				}
			})
		case s.codec == oggOpus:
			pg.packets(func(p []byte) {
				if !isOpusHeader(p) {
					s.samples = satAdd(s.samples, opusSamples(p))
				}
			})
		case s.codec == oggVorbis:
			s.assemble(pg, inChain)
			pg.packets(func(p []byte) { s.samples = satAdd(s.samples, s.vorbis.vorbisSamples(p)) })
		}
		if s != nil && pg.granule < 1<<63 { // -1: no packet ends here; other negatives are invalid
			s.granule = max(s.granule, pg.granule)
		}
	}
	if !opusSeen && vorbisRate == 0 {
		return 0, malformed("no Opus or Vorbis stream")
	}
	for _, s := range streams {
		total = total.add(s.millis())
	}
	if opusSeen {
		total = total.add(samplesToMillis(orphanOpus, 48000))
	}
	if vorbisRate != 0 {
		total = total.add(samplesToMillis(satMul(orphanVorbis, vorbisLong/2), vorbisRate))
	}
	return total, nil
}

// oggNewStream identifies a stream by the first packet of its first page.
func oggNewStream(pg oggPage) (*oggStream, error) {
	var first []byte
	pg.packets(func(p []byte) {
		if first == nil {
			first = p
		}
	})
	switch {
	case bytes.HasPrefix(first, []byte("OpusHead")):
		return &oggStream{codec: oggOpus}, nil
	case bytes.HasPrefix(first, []byte("\x01vorbis")):
		v, ok := parseVorbisID(first)
		if !ok {
			return nil, malformed("Vorbis identification header")
		}
		return &oggStream{codec: oggVorbis, vorbis: v}, nil
	case bytes.HasPrefix(first, []byte("fishead\x00")), bytes.HasPrefix(first, []byte("\x80theora")):
		return &oggStream{codec: oggIgnored}, nil
	}
	return nil, unsupported("Ogg stream codec")
}

// oggCRCOK checks a whole page's CRC (CRC-32, polynomial 0x04C11DB7, not
// reflected, computed with the CRC field zeroed).
func oggCRCOK(p []byte, pg oggPage) bool {
	n := pg.length()
	if n > len(p) {
		return false
	}
	var c uint32
	for i, x := range p[:n] {
		if i >= 22 && i < 26 {
			x = 0
		}
		c = c<<8 ^ oggCRCTable[byte(c>>24)^x]
	}
	return c == uint32(le32(p[22:]))
}

var oggCRCTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()
