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

// packets calls f with the start of each packet that begins on the page,
// cut at the page's (or the file's) end; only a packet's first bytes are
// read, and those are always on the page where it begins.
func (pg oggPage) packets(f func([]byte)) {
	off := 0
	start := !pg.cont
	for _, l := range pg.lacing {
		if start {
			f(pg.body[min(off, len(pg.body)):min(off+int(l), len(pg.body))])
		}
		// a packet continues while its segments are 255 bytes long; f saw
		// its first segment, which holds its first 255 bytes.
		off += int(l)
		start = l < 255
	}
}

func oggDuration(b []byte) (millis, error) {
	streams := map[uint64]*oggStream{}
	var total millis
	var orphanOpus, orphanVorbis uint64 // samples, packets
	var opusSeen bool
	var vorbisRate, vorbisLong uint64 // the lowest rate, the longest block
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
