package fmp4

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/livetape/livetape/internal/mediatest"
)

// TestRecover cuts a recording where a crash could, recovers it, and checks that what
// is left finalizes into a file ffmpeg plays, missing at most a second and a fragment.
func TestRecover(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	fx := loadFixture(t, "av.flv")
	dir := t.TempDir()
	full := filepath.Join(dir, "full.part")
	ends := writeFMP4(t, fx, full, writeOptions{})
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	if len(ends) < 4 {
		t.Fatalf("%d fragments, want at least 3", len(ends)-1)
	}
	// Fragment k spans ends[k]..ends[k+1]: a moof, then the mdat.
	k := 2
	moof, err := readHeader(bytes.NewReader(data), ends[k], int64(len(data)))
	if err != nil || moof.typ != "moof" {
		t.Fatalf("fragment %d: %v %q", k, err, moof.typ)
	}
	mdatStart := moof.end()
	ftypEnd := int64(data[3]) // the ftyp is small: its size is its last size byte

	cases := []struct {
		name string
		data []byte
		want int64 // size kept
		err  error
	}{
		{"mid-mdat", data[:mdatStart+(ends[k+1]-mdatStart)/2], ends[k], nil},
		{"mdat-header-only", data[:mdatStart+8], ends[k], nil},
		{"after-moof", data[:mdatStart], ends[k], nil},
		{"mid-moof", data[:ends[k]+(mdatStart-ends[k])/2], ends[k], nil},
		{"mid-moof-header", data[:ends[k]+5], ends[k], nil},
		{"fragment-boundary", data[:ends[k+1]], ends[k+1], nil},
		{"last-fragment-cut", data[:len(data)-10], ends[len(ends)-2], nil},
		{"complete", data, int64(len(data)), nil},
		{"garbage-after", append(bytes.Clone(data), bytes.Repeat([]byte{0xab}, 100)...), int64(len(data)), nil},
		{"zeros-after", append(bytes.Clone(data), make([]byte, 4096)...), int64(len(data)), nil},
		{"init-only", data[:ends[0]+3], ends[0], ErrNoMedia},
		{"mid-moov", data[:ftypEnd+100], ftypEnd, ErrNoMedia},
		{"empty", nil, 0, ErrNoMedia},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rec.part")
			if err := os.WriteFile(path, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			size, err := Recover(f)
			f.Close()
			if size != c.want || !errors.Is(err, c.err) {
				t.Fatalf("Recover: size %d, err %v; want %d, %v", size, err, c.want, c.err)
			}
			if info, _ := os.Stat(path); info.Size() != c.want {
				t.Fatalf("file is %d bytes after Recover, want %d", info.Size(), c.want)
			}
			if c.err != nil {
				return
			}
			out := filepath.Join(t.TempDir(), "rec.mp4")
			st, err := FinalizeFile(path, out)
			if err != nil {
				t.Fatal(err)
			}
			// A fragment holds a second of video here (a keyframe each second),
			// so the crash costs at most two seconds of frames.
			lost := fx.videoFrames - st.VideoFrames
			if lost < 0 || lost > 25+25 {
				t.Errorf("%d of %d video frames survive", st.VideoFrames, fx.videoFrames)
			}
			r := mediatest.ProbeFrames(t, out)
			if _, _, _, frames := r.Stream("video"); frames != st.VideoFrames {
				t.Errorf("ffprobe counts %d video frames, Finalize %d", frames, st.VideoFrames)
			}
			if _, _, _, frames := r.Stream("audio"); frames != st.AudioFrames {
				t.Errorf("ffprobe counts %d audio frames, Finalize %d", frames, st.AudioFrames)
			}
			mediatest.DecodeClean(t, out)
		})
	}
}

func TestRecoverNotFMP4(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x")
	content := []byte("this is not an MP4 file at all, and it must stay as it is")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Recover(f); !errors.Is(err, ErrNotFMP4) {
		t.Errorf("Recover: %v, want ErrNotFMP4", err)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
		t.Error("Recover changed a file that is not ours")
	}
}

// TestFinalizeRejectsDamage checks that Finalize reports, rather than silently drops,
// a file that Recover has not cleaned.
func TestFinalizeRejectsDamage(t *testing.T) {
	fx := loadFixture(t, "av.flv")
	path := filepath.Join(t.TempDir(), "a.part")
	ends := writeFMP4(t, fx, path, writeOptions{})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string][]byte{
		"cut":     data[:ends[2]+20],
		"garbage": append(bytes.Clone(data), 0, 0, 0, 9, 1, 2, 3, 4, 5),
	} {
		if _, err := Finalize(bytes.NewReader(d), &bytes.Buffer{}); err == nil {
			t.Errorf("%s: Finalize succeeded", name)
		}
	}
}
