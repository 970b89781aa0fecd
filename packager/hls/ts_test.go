package hls

import (
	"bytes"
	"testing"
)

// The hand-written packetizer against go-astits' demuxer (an independent reading of
// ISO/IEC 13818-1): every PES size around the packet boundaries, with and without an
// adaptation field and PCR, comes back with its bytes and timestamps, the continuity
// counters run on per PID, and the tables parse (astits checks their CRC).
func TestTSPacketization(t *testing.T) {
	var w tsWriter
	w.addStream(VideoPID, streamTypeH264)
	w.addStream(AudioPID, streamTypeAAC)
	w.setPCRPID(VideoPID)
	var ts []byte
	var want []pesInfo
	sizes := []int{1, 2, 3, 150, 156, 157, 158, 163, 164, 165, 166, 170, 175, 176, 182, 183, 184, 185, 340, 341, 342, 347, 348, 349, 4000, 70000}
	for i, n := range sizes {
		data := bytes.Repeat([]byte{byte(i + 1)}, n)
		for _, p := range []pesInfo{
			{pid: VideoPID, streamID: 0xe0, data: data, pts: int64(40*i + 80), dts: int64(40 * i), withAF: true, rai: true, withPCR: true},
			{pid: VideoPID, streamID: 0xe0, data: data, pts: int64(40 * i), dts: int64(40 * i)},
			{pid: AudioPID, streamID: 0xc0, data: data, pts: int64(23 * i), dts: int64(23 * i), withAF: true},
		} {
			if i%5 == 0 {
				ts = w.appendTables(ts)
			}
			ts = w.appendPES(ts, &p)
			want = append(want, p)
		}
	}
	d := demux(t, ts)
	if !d.pat || d.pmt == nil {
		t.Fatalf("PAT %v, PMT %v", d.pat, d.pmt)
	}
	if d.pmt.PCRPID != VideoPID || len(d.pmt.ElementaryStreams) != 2 {
		t.Fatalf("PMT: PCR PID %#x, %d streams", d.pmt.PCRPID, len(d.pmt.ElementaryStreams))
	}
	if len(d.pes) != len(want) {
		t.Fatalf("%d PES demuxed, %d written", len(d.pes), len(want))
	}
	// The demuxer hands a PES on when the next one of its PID starts: compare the
	// PES of each PID in order.
	wantOf := map[uint16][]pesInfo{}
	for _, p := range want {
		wantOf[p.pid] = append(wantOf[p.pid], p)
	}
	for i, got := range d.pes {
		p := wantOf[got.PID][0]
		wantOf[got.PID] = wantOf[got.PID][1:]
		if got.PID != p.pid || !bytes.Equal(got.PES.Data, p.data) {
			t.Fatalf("PES %d: PID %#x, %d bytes; want PID %#x, %d bytes", i, got.PID, len(got.PES.Data), p.pid, len(p.data))
		}
		opt := got.PES.Header.OptionalHeader
		if opt.PTS.Base != clock90k(p.pts) {
			t.Errorf("PES %d: PTS %d, want %d", i, opt.PTS.Base, clock90k(p.pts))
		}
		if p.pts != p.dts && (opt.DTS == nil || opt.DTS.Base != clock90k(p.dts)) {
			t.Errorf("PES %d: DTS %v, want %d", i, opt.DTS, clock90k(p.dts))
		}
		af := got.FirstPacket.AdaptationField
		if p.withPCR && (af == nil || !af.HasPCR || af.PCR.Base != clock90k(p.dts) || !af.RandomAccessIndicator) {
			t.Errorf("PES %d: adaptation field %+v, want RAI and PCR %d", i, af, clock90k(p.dts))
		}
	}
	// Continuity: +1 mod 16 per packet of a PID (every packet carries payload).
	last := map[uint16]int{}
	for i := 0; i < len(ts); i += tsPacketSize {
		pkt := ts[i : i+tsPacketSize]
		if pkt[0] != 0x47 {
			t.Fatalf("packet %d: sync byte %#x", i/tsPacketSize, pkt[0])
		}
		p, cc := pid(pkt), int(pkt[3]&0x0f)
		if prev, ok := last[p]; ok && cc != (prev+1)%16 {
			t.Fatalf("packet %d, PID %#x: continuity counter %d after %d", i/tsPacketSize, p, cc, prev)
		}
		last[p] = cc
	}
}

// CRC-32/MPEG-2's check value (the CRC of "123456789").
func TestCRC32MPEG(t *testing.T) {
	if got := crc32MPEG([]byte("123456789")); got != 0x0376e6e7 {
		t.Fatalf("crc32MPEG = %#08x, want 0x0376e6e7", got)
	}
}
