package flv

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/livetape/livetape/media"
)

// writeRecording writes the fixture's packets as the recorder does: header and tags, no
// metadata. It returns the file and the offset of every tag end.
func writeRecording(t *testing.T, dir string) (string, []int64) {
	t.Helper()
	data, err := os.ReadFile("../../testdata/av.flv")
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	out := Header(true, true)
	var ends []int64
	for {
		p, err := r.ReadPacket()
		if err != nil {
			break
		}
		if p.Kind == media.KindData {
			continue
		}
		out = append(out, p.Tag...)
		ends = append(ends, int64(len(out)))
	}
	path := filepath.Join(dir, "rec.flv.part")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, ends
}

func TestFinalize(t *testing.T) {
	dir := t.TempDir()
	part, _ := writeRecording(t, dir)
	dst := filepath.Join(dir, "rec.flv")
	st, err := Finalize(part, dst, &Metadata{Width: 320, Height: 240})
	if err != nil {
		t.Fatal(err)
	}
	if st.VideoFrames != 100 || st.Duration < 3.9 || st.Duration > 4.2 {
		t.Errorf("stats %+v: want 100 video frames, ~4 s", st)
	}
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != st.Size {
		t.Errorf("size %d, stats say %d", len(data), st.Size)
	}
	r, _ := NewReader(bytes.NewReader(data))
	first, err := r.ReadPacket()
	if err != nil || first.Kind != media.KindData {
		t.Fatalf("first tag %v, err %v: want onMetaData", first, err)
	}
	_, meta, err := ParseScriptData(first.Body())
	if err != nil {
		t.Fatal(err)
	}
	if meta.FileSize != float64(len(data)) || meta.Duration != st.Duration || meta.Width != 320 {
		t.Errorf("metadata filesize %v duration %v width %v", meta.FileSize, meta.Duration, meta.Width)
	}
	checkKeyframeIndex(t, data, meta.Keyframes)
}

// checkKeyframeIndex checks the index against the file's tags: one entry for each
// timestamp that has a video tag of frame type keyframe (sequence header, picture,
// end of sequence), pointing at the first such tag, as flvmeta expects.
func checkKeyframeIndex(t *testing.T, data []byte, kf *Keyframes) {
	t.Helper()
	var wantTimes, wantPos []float64
	r, _ := NewReader(bytes.NewReader(data))
	for {
		off := r.Offset
		p, err := r.ReadPacket()
		if err != nil {
			break
		}
		if p.Kind != media.KindVideo || !p.Keyframe {
			continue
		}
		if ts := float64(p.Timestamp) / 1000; len(wantTimes) == 0 || wantTimes[len(wantTimes)-1] != ts {
			wantTimes, wantPos = append(wantTimes, ts), append(wantPos, float64(off))
		}
	}
	if kf == nil || !slices.Equal(kf.Times, wantTimes) || !slices.Equal(kf.FilePositions, wantPos) {
		t.Fatalf("keyframes %+v, want times %v at %v", kf, wantTimes, wantPos)
	}
	// The first entry is the sequence header, right before the first picture.
	r, _ = NewReader(bytes.NewReader(append(Header(true, true), data[int(wantPos[0]):]...)))
	if p, err := r.ReadPacket(); err != nil || !p.SequenceHeader || p.Kind != media.KindVideo {
		t.Errorf("first keyframe entry points at %+v, %v: want the AVC sequence header", p, err)
	}
}

// A recording recovered after a crash has no metadata from the publisher: width and
// height come from the SPS, stereo from the audio tags, and flvmeta finds nothing wrong.
func TestFinalizeRecovered(t *testing.T) {
	dir := t.TempDir()
	part, _ := writeRecording(t, dir)
	dst := filepath.Join(dir, "rec.flv")
	if _, err := Finalize(part, dst, nil); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := NewReader(bytes.NewReader(data))
	first, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	_, meta, err := ParseScriptData(first.Body())
	if err != nil {
		t.Fatal(err)
	}
	if meta.Width != 320 || meta.Height != 240 || !meta.Stereo {
		t.Errorf("width %v height %v stereo %v, want 320x240 stereo", meta.Width, meta.Height, meta.Stereo)
	}
	checkKeyframeIndex(t, data, meta.Keyframes)

	// Incomplete metadata (a publisher that sent no height) is completed the same way.
	if _, err := Finalize(part, dst, &Metadata{Width: 320, FrameRate: 25}); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(dst)
	r, _ = NewReader(bytes.NewReader(data))
	first, _ = r.ReadPacket()
	if _, meta, _ = ParseScriptData(first.Body()); meta.Width != 320 || meta.Height != 240 || meta.FrameRate != 25 {
		t.Errorf("completed metadata %+v", meta)
	}

	t.Run("flvmeta", func(t *testing.T) {
		if _, err := exec.LookPath("flvmeta"); err != nil {
			// mediatest.MissingTool, which this package cannot import (mediatest reads FLV).
			if v := os.Getenv("LIVETAPE_TEST_REQUIRE_TOOLS"); v != "" && v != "0" {
				t.Fatal("flvmeta not installed (LIVETAPE_TEST_REQUIRE_TOOLS is set: scripts/test.sh installs it)")
			}
			t.Skip("flvmeta not installed (scripts/test.sh installs it)")
		}
		if _, err := Finalize(part, dst, nil); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command("flvmeta", "--check", dst).CombinedOutput()
		for _, code := range []string{"E60077", "E60078", "W81071", "W81075", "W80062"} {
			if bytes.Contains(out, []byte(code)) {
				t.Errorf("flvmeta --check reports %s:\n%s", code, out)
			}
		}
	})
}

func TestFinalizeTruncated(t *testing.T) {
	dir := t.TempDir()
	part, ends := writeRecording(t, dir)
	full, _ := os.ReadFile(part)
	cut := ends[len(ends)/2] + 7 // inside the next tag's header
	if err := os.WriteFile(part, full[:cut], 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := Finalize(part, filepath.Join(dir, "rec.flv"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.Truncated != 7 || st.Duration < 1.5 || st.Duration > 2.5 {
		t.Errorf("stats %+v: want 7 bytes dropped, ~2 s kept", st)
	}
	os.WriteFile(part, Header(true, true), 0o644)
	if _, err := Finalize(part, filepath.Join(dir, "empty.flv"), nil); !errors.Is(err, ErrNoMedia) {
		t.Errorf("empty recording: err = %v", err)
	}
}
