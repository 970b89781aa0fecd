package hls

// MPEG-TS packetization (ISO/IEC 13818-1), written by hand: one program, fixed PIDs,
// H.264 and AAC. go-astits built every packet bit by bit through a bit writer, which
// cost more than half of what ingest costs per stream (every live stream is muxed
// once for live HLS and once more when recorded as HLS); here each TS packet is a
// 4-byte header, an optional adaptation field and a copy of the payload.

const (
	tsPacketSize = 188
	tsHeaderSize = 4
	tsPayloadMax = tsPacketSize - tsHeaderSize

	patPID        uint16 = 0x0000
	pmtPID        uint16 = 0x1000 // as ffmpeg and go-astits number it
	programNumber        = 1

	streamTypeH264 = 0x1b
	streamTypeAAC  = 0x0f // ADTS
)

// pesInfo describes one PES: its PID and stream id, the elementary stream bytes,
// timestamps in ms, and the adaptation field of its first TS packet (when withAF: the
// random access indicator rai, and a PCR equal to the DTS when pcr).
type pesInfo struct {
	pid          uint16
	streamID     byte
	data         []byte
	pts, dts     int64
	withAF       bool
	rai, withPCR bool
}

// tsWriter appends TS packets to a buffer and keeps the state that spans them: the
// continuity counter of each PID and the PMT's contents and version.
type tsWriter struct {
	cc         [4]byte // PAT, PMT, video, audio
	es         []pmtStream
	pcrPID     uint16
	pmtVersion byte
}

type pmtStream struct {
	pid        uint16
	streamType byte
}

// addStream lists an elementary stream in the PMT (a new PMT version).
func (w *tsWriter) addStream(pid uint16, streamType byte) {
	w.es = append(w.es, pmtStream{pid, streamType})
	w.pmtVersion = (w.pmtVersion + 1) & 0x1f
}

// setPCRPID makes pid carry the program clock (a new PMT version).
func (w *tsWriter) setPCRPID(pid uint16) {
	w.pcrPID = pid
	w.pmtVersion = (w.pmtVersion + 1) & 0x1f
}

// nextCC returns pid's continuity counter for a packet with payload, and advances it.
func (w *tsWriter) nextCC(pid uint16) byte {
	i := 0
	switch pid {
	case pmtPID:
		i = 1
	case VideoPID:
		i = 2
	case AudioPID:
		i = 3
	}
	c := w.cc[i]
	w.cc[i] = (c + 1) & 0x0f
	return c
}

// appendTables appends a PAT and a PMT, one TS packet each.
func (w *tsWriter) appendTables(b []byte) []byte {
	pat := []byte{
		0x00,       // table_id: program_association_section
		0xb0, 0x0d, // section_syntax_indicator, '0', reserved, section_length 13
		0x00, 0x01, // transport_stream_id
		0xc1,       // reserved, version 0, current_next_indicator
		0x00, 0x00, // section_number, last_section_number
		0x00, programNumber,
		0xe0 | byte(pmtPID>>8), byte(pmtPID & 0xff),
	}
	b = w.appendSection(b, patPID, pat)

	n := 13 + 5*len(w.es) // after section_length: 9 bytes of header, the streams, the CRC
	pmt := make([]byte, 0, 3+n)
	pmt = append(pmt,
		0x02, // table_id: TS_program_map_section
		0xb0|byte(n>>8), byte(n),
		0x00, programNumber,
		0xc1|w.pmtVersion<<1,
		0x00, 0x00,
		0xe0|byte(w.pcrPID>>8), byte(w.pcrPID),
		0xf0, 0x00, // program_info_length 0
	)
	for _, es := range w.es {
		pmt = append(pmt, es.streamType, 0xe0|byte(es.pid>>8), byte(es.pid), 0xf0, 0x00)
	}
	return w.appendSection(b, pmtPID, pmt)
}

// appendSection appends one PSI section (without its CRC, which it adds) in a TS
// packet of its own, stuffed with 0xff.
func (w *tsWriter) appendSection(b []byte, pid uint16, section []byte) []byte {
	start := len(b)
	b = append(b, 0x47, 0x40|byte(pid>>8), byte(pid), 0x10|w.nextCC(pid), 0x00) // pointer_field 0
	b = append(b, section...)
	crc := crc32MPEG(section)
	b = append(b, byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc))
	for len(b)-start < tsPacketSize {
		b = append(b, 0xff)
	}
	return b
}

// appendPES appends p as TS packets: a PES header with PTS (and DTS when it differs),
// then the data, the last packet filled up with adaptation field stuffing.
func (w *tsWriter) appendPES(b []byte, p *pesInfo) []byte {
	var hdr [19]byte
	h := hdr[:0]
	h = append(h, 0, 0, 1, p.streamID)
	length := 0 // unbounded: allowed for video only
	hasDTS := p.pts != p.dts
	optLen := 5
	if hasDTS {
		optLen = 10
	}
	if p.streamID != 0xe0 {
		if l := 3 + optLen + len(p.data); l <= 0xffff {
			length = l
		}
	}
	h = append(h, byte(length>>8), byte(length), 0x84) // '10', data_alignment_indicator
	if hasDTS {
		h = append(h, 0xc0, byte(optLen))
		h = appendTimestamp(h, 0x3, clock90k(p.pts))
		h = appendTimestamp(h, 0x1, clock90k(p.dts))
	} else {
		h = append(h, 0x80, byte(optLen))
		h = appendTimestamp(h, 0x2, clock90k(p.pts))
	}

	data := p.data
	first := true
	for first || len(data) > 0 {
		// Adaptation field of this packet, before stuffing: flags and PCR on the first.
		af := 0
		if first && p.withAF {
			af = 2 // adaptation_field_length, flags
			if p.withPCR {
				af += 6
			}
		}
		payload := len(data)
		if first {
			payload += len(h)
		}
		stuff := 0
		if room := tsPayloadMax - af; payload < room {
			stuff = room - payload
		} else {
			payload = room
		}
		if af == 0 && stuff > 0 {
			af, stuff = 1, stuff-1 // the length byte alone is one byte of stuffing
			if stuff > 0 {
				af, stuff = 2, stuff-1 // and a flags byte
			}
		}
		afc := byte(0x10) // payload only
		if af > 0 {
			afc = 0x30
		}
		pusi := byte(0)
		if first {
			pusi = 0x40
		}
		b = append(b, 0x47, pusi|byte(p.pid>>8), byte(p.pid), afc|w.nextCC(p.pid))
		if af > 0 {
			b = append(b, byte(af-1+stuff))
			if af > 1 {
				flags := byte(0)
				if first && p.withAF {
					if p.rai {
						flags |= 0x40
					}
					if p.withPCR {
						flags |= 0x10
					}
				}
				b = append(b, flags)
				if flags&0x10 != 0 {
					b = appendPCR(b, clock90k(p.dts))
				}
			}
			for range stuff {
				b = append(b, 0xff)
			}
		}
		if first {
			b = append(b, h...)
			payload -= len(h)
			first = false
		}
		b = append(b, data[:payload]...)
		data = data[payload:]
	}
	return b
}

// appendTimestamp appends a 33-bit PTS or DTS with its 4-bit prefix and marker bits.
func appendTimestamp(b []byte, prefix byte, ts int64) []byte {
	return append(b,
		prefix<<4|byte(ts>>29)&0x0e|1,
		byte(ts>>22),
		byte(ts>>14)&0xfe|1,
		byte(ts>>7),
		byte(ts<<1)&0xfe|1,
	)
}

// appendPCR appends a program_clock_reference: the 33-bit base, 6 reserved bits, and
// an extension of 0.
func appendPCR(b []byte, base int64) []byte {
	return append(b, byte(base>>25), byte(base>>17), byte(base>>9), byte(base>>1), byte(base<<7)|0x7e, 0)
}

// crcTable is the table of CRC-32/MPEG-2 (polynomial 0x04c11db7, not reflected).
var crcTable = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04c11db7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// crc32MPEG is the CRC_32 of PSI sections (ISO/IEC 13818-1 annex A).
func crc32MPEG(b []byte) uint32 {
	c := uint32(0xffffffff)
	for _, x := range b {
		c = c<<8 ^ crcTable[byte(c>>24)^x]
	}
	return c
}
