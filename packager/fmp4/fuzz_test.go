package fmp4

import (
	"bytes"
	"errors"
	"testing"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livetape/livetape/media"
)

// smallFMP4 is the start of av.flv (sequence headers, then 0.6 s of audio and video)
// written with a fragment every five packets, plus where each fragment ends.
func smallFMP4(t testing.TB) ([]byte, []int64) {
	fx := loadFixture(t, "av.flv")
	var buf bytes.Buffer
	cw := &countWriter{w: &buf}
	w, err := NewWriter(cw, fx.tracks)
	if err != nil {
		t.Fatal(err)
	}
	ends := []int64{cw.n}
	for i, p := range fx.pkts[:40] {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
		if i%5 == 4 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			ends = append(ends, cw.n)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), append(ends, cw.n)
}

// tinyFMP4 has the fixture's tracks but samples of a few bytes, so that most of the
// file is moof boxes: mutations then land in the index rather than in the media.
func tinyFMP4(t testing.TB) []byte {
	fx := loadFixture(t, "av.flv")
	var buf bytes.Buffer
	w, err := NewWriter(&buf, fx.tracks)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		ts := uint32(i * 40)
		key := byte(0x27) // inter frame, AVC
		if i%4 == 0 {
			key = 0x17
		}
		v, _ := media.NewPacket(media.KindVideo, ts, []byte{key, 1, 0, 0, 40, 0, 0, 0, 1, 0x65})
		a, _ := media.NewPacket(media.KindAudio, ts+5, []byte{0xaf, 1, 0x21})
		for _, p := range []*media.Packet{v, a} {
			if err := w.WritePacket(p); err != nil {
				t.Fatal(err)
			}
		}
		if i%4 == 3 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// FuzzRecoverFinalize feeds damaged files to the recovery scan and to Finalize. Neither
// may panic; the tables may not hold more samples than the file has bytes (the guard
// against a moof claiming millions of samples); and whatever Finalize writes must
// decode with mp4ff and agree with its Stats.
func FuzzRecoverFinalize(f *testing.F) {
	data, ends := smallFMP4(f)
	f.Add(data)
	for _, e := range ends {
		f.Add(data[:e])
		f.Add(data[:e+7])
		f.Add(data[:e+(int64(len(data))-e)/3])
	}
	f.Add(append(bytes.Clone(data), 0, 0, 0, 16, 'm', 'o', 'o', 'f'))
	tiny := tinyFMP4(f)
	f.Add(tiny)
	f.Add(tiny[:len(tiny)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &scanner{r: bytes.NewReader(data), size: int64(len(data))}
		err := s.scan()
		if s.end < 0 || s.end > int64(len(data)) || s.samples > int64(len(data)) {
			t.Fatalf("scan: end %d, %d samples in %d bytes", s.end, s.samples, len(data))
		}
		if errors.Is(err, ErrNotFMP4) {
			return
		}
		// What Recover keeps must finalize, unless it holds no fragment.
		kept := data[:s.end]
		var out bytes.Buffer
		st, err := Finalize(bytes.NewReader(kept), &out)
		if s.fragments > 0 && s.samples > 0 && err != nil {
			t.Fatalf("finalize recovered file (%d fragments): %v", s.fragments, err)
		}
		if err == nil {
			checkFinalized(t, out.Bytes(), st, len(kept))
		}
		// Finalize of the raw input may fail, never panic.
		out.Reset()
		if st, err := Finalize(bytes.NewReader(data), &out); err == nil {
			checkFinalized(t, out.Bytes(), st, len(data))
		}
	})
}

// checkFinalized decodes a finalized file with mp4ff and compares it with st.
func checkFinalized(t *testing.T, out []byte, st Stats, inSize int) {
	t.Helper()
	if st.Bytes != int64(len(out)) {
		t.Fatalf("Stats.Bytes %d, wrote %d", st.Bytes, len(out))
	}
	if st.VideoFrames+st.AudioFrames > inSize {
		t.Fatalf("%d frames from %d bytes", st.VideoFrames+st.AudioFrames, inSize)
	}
	file, err := mp4.DecodeFile(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("finalized file does not decode: %v", err)
	}
	if file.Moov == nil || file.Mdat == nil || file.IsFragmented() {
		t.Fatal("finalized file is not progressive")
	}
	var samples int
	for _, trak := range file.Moov.Traks {
		samples += int(trak.Mdia.Minf.Stbl.Stsz.SampleNumber)
	}
	if samples != st.VideoFrames+st.AudioFrames {
		t.Fatalf("stsz lists %d samples, Stats %d", samples, st.VideoFrames+st.AudioFrames)
	}
}
