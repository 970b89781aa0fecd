package flv

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
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
	if meta.Keyframes == nil || len(meta.Keyframes.Times) != 4 {
		t.Fatalf("keyframes %+v, want 4", meta.Keyframes)
	}
	// Every indexed position is a video keyframe tag at the indexed time.
	for i, pos := range meta.Keyframes.FilePositions {
		r, err := NewReader(bytes.NewReader(append(Header(true, true), data[int(pos):]...)))
		if err != nil {
			t.Fatal(err)
		}
		p, err := r.ReadPacket()
		if err != nil || p.Kind != media.KindVideo || !p.Keyframe || float64(p.Timestamp)/1000 != meta.Keyframes.Times[i] {
			t.Errorf("keyframe %d at %v: %+v %v", i, pos, p, err)
		}
	}
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
