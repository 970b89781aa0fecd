package mp4concat

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/livetape/livetape/packager/fmp4"
)

// smallRecording is the start of av.flv (sequence headers and 1.2 s of media) as
// the recorder finalizes it, in memory.
func smallRecording(t testing.TB) []byte {
	fx := loadFixture(t, "av.flv")
	var frag bytes.Buffer
	w, err := fmp4.NewWriter(&frag, fx.tracks)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range fx.pkts[:80] {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := fmp4.Finalize(bytes.NewReader(frag.Bytes()), &out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// FuzzConcat feeds damaged recordings to Concat and Clip: they must return an error
// or a movie that reads to its end (or fails with an error), never panic or allocate
// beyond what the file's size allows.
func FuzzConcat(f *testing.F) {
	rec := smallRecording(f)
	f.Add(rec)
	f.Add(rec[:len(rec)/2])
	// Flip bytes in the moov, where the tables are.
	for _, at := range []int{40, 200, 400, 600, 800} {
		if at < len(rec) {
			b := bytes.Clone(rec)
			b[at] ^= 0xff
			f.Add(b)
		}
	}
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		in := Input{Name: "fuzz", R: bytes.NewReader(data), Size: int64(len(data)), Start: start}
		m, err := Concat([]Input{in, in}, Options{Gaps: KeepGaps})
		if err != nil {
			if !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrNoMedia) && !errors.Is(err, ErrConfigMismatch) {
				t.Fatalf("Concat: unexpected error %v", err)
			}
			return
		}
		if _, err := m.WriteTo(io.Discard); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("WriteTo: %v", err)
		}
		c, err := Clip([]Input{in}, start.Add(500*time.Millisecond), start.Add(time.Second), Options{})
		if err == nil {
			io.Copy(io.Discard, c.NewReader())
		}
	})
}

// TestRefuseDamaged checks that the bounds hold on inputs made to break them.
func TestRefuseDamaged(t *testing.T) {
	rec := smallRecording(t)
	for name, data := range map[string][]byte{
		"empty":          {},
		"not an mp4":     []byte("#EXTM3U\n#EXT-X-VERSION:3\n"),
		"cut in the box": rec[:20],
		"cut in moov":    rec[:500],
	} {
		in := Input{Name: name, R: bytes.NewReader(data), Size: int64(len(data))}
		if _, err := Concat([]Input{in}, Options{}); !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrNoMedia) {
			t.Errorf("%s: %v, want ErrUnsupported", name, err)
		}
	}
	// A fragmented file (not finalized) is refused with a reason.
	fx := loadFixture(t, "av.flv")
	var frag bytes.Buffer
	w, _ := fmp4.NewWriter(&frag, fx.tracks)
	for _, p := range fx.pkts[:40] {
		w.WritePacket(p)
	}
	w.Close()
	in := Input{Name: "frag", R: bytes.NewReader(frag.Bytes()), Size: int64(frag.Len())}
	if _, err := Concat([]Input{in}, Options{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("fragmented input: %v, want ErrUnsupported", err)
	}
}
