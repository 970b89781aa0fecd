package fmp4

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livetape/livetape/internal/mediatest"
)

// checkProbe checks what ffprobe finds in path against the fixture.
func checkProbe(t *testing.T, fx *fixture, path string, wantDur float64) {
	t.Helper()
	r := mediatest.ProbeFrames(t, path)
	codec, w, h, frames := r.Stream("video")
	if fx.tracks.Video != nil {
		if codec != "h264" || w != fx.tracks.Video.Width || h != fx.tracks.Video.Height {
			t.Errorf("%s: video %s %dx%d, want h264 %dx%d", filepath.Base(path), codec, w, h,
				fx.tracks.Video.Width, fx.tracks.Video.Height)
		}
		if frames != fx.videoFrames {
			t.Errorf("%s: %d video frames, want %d", filepath.Base(path), frames, fx.videoFrames)
		}
	} else if codec != "" {
		t.Errorf("%s: unexpected video stream %s", filepath.Base(path), codec)
	}
	codec, _, _, frames = r.Stream("audio")
	if fx.tracks.Audio != nil {
		if codec != "aac" {
			t.Errorf("%s: audio codec %q, want aac", filepath.Base(path), codec)
		}
		if frames != fx.audioFrames {
			t.Errorf("%s: %d audio frames, want %d", filepath.Base(path), frames, fx.audioFrames)
		}
	} else if codec != "" {
		t.Errorf("%s: unexpected audio stream %s", filepath.Base(path), codec)
	}
	if d := r.Duration(); math.Abs(d-wantDur) > 0.1 {
		t.Errorf("%s: duration %.3f s, want %.3f", filepath.Base(path), d, wantDur)
	}
}

// TestWriteFinalize writes each fixture as fragmented MP4, finalizes it, and has
// ffprobe and ffmpeg check both files.
func TestWriteFinalize(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	for _, name := range []string{"av.flv", "audio.flv", "video720.flv"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fx := loadFixture(t, name)
			wantDur := probeDuration(t, name)
			dir := t.TempDir()
			frag := filepath.Join(dir, "rec.mp4.part")
			ends := writeFMP4(t, fx, frag, writeOptions{})
			if len(ends) < 3 {
				t.Fatalf("%d fragments, want several", len(ends)-1)
			}
			if boxes := topLevelBoxes(t, frag); boxes[0] != "ftyp" || boxes[1] != "moov" || boxes[2] != "moof" {
				t.Errorf("fragmented boxes %v", boxes)
			}
			checkProbe(t, fx, frag, wantDur)
			mediatest.DecodeClean(t, frag)

			out := filepath.Join(dir, "rec.mp4")
			st, err := FinalizeFile(frag, out)
			if err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(out)
			if err != nil {
				t.Fatal(err)
			}
			if st.Bytes != info.Size() || st.VideoFrames != fx.videoFrames || st.AudioFrames != fx.audioFrames ||
				math.Abs(st.Duration.Seconds()-wantDur) > 0.1 {
				t.Errorf("stats %+v; file %d bytes, want %d video and %d audio frames, %.3f s",
					st, info.Size(), fx.videoFrames, fx.audioFrames, wantDur)
			}
			boxes := topLevelBoxes(t, out)
			if !slices.Equal(boxes, []string{"ftyp", "moov", "mdat"}) {
				t.Errorf("finalized boxes %v, want ftyp moov mdat", boxes)
			}
			checkProbe(t, fx, out, wantDur)
			mediatest.DecodeClean(t, out)
			if entries, _ := os.ReadDir(dir); len(entries) != 2 {
				t.Errorf("temporary files left: %v", entries)
			}
		})
	}
}

// TestFinalizeKeepsConfig checks that the sample descriptions survive finalizing byte
// for byte (the avcC and the AudioSpecificConfig are the publisher's).
func TestFinalizeKeepsConfig(t *testing.T) {
	fx := loadFixture(t, "av.flv")
	dir := t.TempDir()
	frag, out := filepath.Join(dir, "a.part"), filepath.Join(dir, "a.mp4")
	writeFMP4(t, fx, frag, writeOptions{})
	if _, err := FinalizeFile(frag, out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	avcC := binary.BigEndian.AppendUint32(nil, uint32(8+len(fx.tracks.Video.Record)))
	avcC = append(append(avcC, "avcC"...), fx.tracks.Video.Record...)
	if !bytes.Contains(data, avcC) {
		t.Error("avcC differs from the publisher's record")
	}
	file, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var asc []byte
	for _, trak := range file.Moov.Traks {
		if e := trak.Mdia.Minf.Stbl.Stsd.Mp4a; e != nil {
			asc = e.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig
			if e.ChannelCount != uint16(fx.tracks.Audio.Channels) || int(e.SampleRate) != fx.tracks.Audio.SampleRate {
				t.Errorf("mp4a: %d channels at %d Hz", e.ChannelCount, e.SampleRate)
			}
		}
	}
	if !bytes.Equal(asc, fx.tracks.Audio.Record) {
		t.Errorf("AudioSpecificConfig %x, want %x", asc, fx.tracks.Audio.Record)
	}
}

// TestWriterTimestamps feeds the fixture shifted by 10 s: the file still starts at 0,
// and audio frames last exactly 1024 samples although FLV times are whole milliseconds.
func TestWriterTimestamps(t *testing.T) {
	fx := loadFixture(t, "av.flv")
	dir := t.TempDir()
	frag := filepath.Join(dir, "a.part")
	writeFMP4(t, fx, frag, writeOptions{shift: 10000})
	f, err := os.Open(frag)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	s := &scanner{r: f, size: info.Size(), collect: true}
	if err := s.scan(); err != nil {
		t.Fatal(err)
	}
	for _, tr := range s.tracks {
		secs := float64(tr.start+tr.Duration()) / float64(tr.timescale)
		if secs < 3.9 || secs > 4.2 {
			t.Errorf("track %d ends at %.3f s, want ~4.1", tr.id, secs)
		}
		if tr.video {
			if tr.start != 0 || len(tr.Stts) != 1 || tr.Stts[0].Delta != 3600 {
				t.Errorf("video starts at %d, stts %v: want 0 and 3600 per frame", tr.start, tr.Stts)
			}
			if len(tr.Syncs) != 4 || !tr.Cto {
				t.Errorf("video: %d sync samples, composition offsets %v: want 4 and B-frames", len(tr.Syncs), tr.Cto)
			}
			continue
		}
		// ffmpeg's AAC encoder starts audio at 57 ms; the fixture's video at 0.
		if want := uint64(57 * 44100 / 1000); tr.start < want-50 || tr.start > want+50 {
			t.Errorf("audio starts at %d, want ~%d", tr.start, want)
		}
		if len(tr.Stts) != 1 || tr.Stts[0].Delta != 1024 {
			t.Errorf("audio stts %v, want 1024 per frame", tr.Stts)
		}
	}
}

func TestFinalizeNoMedia(t *testing.T) {
	fx := loadFixture(t, "av.flv")
	dir := t.TempDir()
	path := filepath.Join(dir, "empty.part")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(f, fx.tracks)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := FinalizeFile(path, filepath.Join(dir, "empty.mp4")); err != ErrNoMedia {
		t.Errorf("finalize an init segment alone: %v, want ErrNoMedia", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "empty.mp4")); !os.IsNotExist(err) {
		t.Errorf("output exists after a failed finalize: %v", err)
	}
}

func TestWriterCodecChange(t *testing.T) {
	fx := loadFixture(t, "av.flv")
	other := loadFixture(t, "video720.flv")
	w, err := NewWriter(&countWriter{w: io.Discard}, fx.tracks)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range fx.pkts[:10] {
		if err := w.WritePacket(p); err != nil {
			t.Fatalf("same stream: %v", err)
		}
	}
	seq := other.pkts[0]
	if !seq.SequenceHeader {
		t.Fatal("video720.flv does not start with a sequence header")
	}
	if err := w.WritePacket(seq); !errors.Is(err, ErrCodecChange) {
		t.Errorf("new sequence header: %v, want ErrCodecChange", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(fx.pkts[11]); err != ErrClosed {
		t.Errorf("write after close: %v", err)
	}
	if _, err := NewWriter(io.Discard, Tracks{}); err == nil {
		t.Error("NewWriter without tracks succeeded")
	}
}

// TestWriterPending checks the flush hint and that a flush ends before the newest
// sample of each track.
func TestWriterPending(t *testing.T) {
	fx := loadFixture(t, "audio.flv")
	cw := &countWriter{w: io.Discard}
	w, err := NewWriter(cw, fx.tracks)
	if err != nil {
		t.Fatal(err)
	}
	init := cw.n
	if err := w.Flush(); err != nil || cw.n != init {
		t.Fatalf("empty flush wrote %d bytes, err %v", cw.n-init, err)
	}
	var written int
	for _, p := range fx.pkts {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
		if !p.SequenceHeader {
			written++
		}
		if w.Pending() >= time.Second {
			break
		}
	}
	if w.Pending() > 1100*time.Millisecond || written < 40 {
		t.Errorf("pending %v after %d frames", w.Pending(), written)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if w.Pending() != 0 || len(w.audio.queue) != 1 {
		t.Errorf("after flush: pending %v, %d queued; want the newest frame held", w.Pending(), len(w.audio.queue))
	}
}

// TestFinalizeLargeOffsets takes the paths of files over 4 GiB (co64 chunk offsets, an
// mdat with a 64-bit size) on the fixture, and has ffmpeg read the result.
func TestFinalizeLargeOffsets(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	defer func(v int64) { max32 = v }(max32)
	max32 = 0
	fx := loadFixture(t, "av.flv")
	dir := t.TempDir()
	frag, out := filepath.Join(dir, "a.part"), filepath.Join(dir, "a.mp4")
	writeFMP4(t, fx, frag, writeOptions{})
	st, err := FinalizeFile(frag, out)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("co64")) || bytes.Contains(data, []byte("stco")) {
		t.Error("no co64, or an stco left")
	}
	if boxes := topLevelBoxes(t, out); !slices.Equal(boxes, []string{"ftyp", "moov", "mdat"}) {
		t.Errorf("boxes %v", boxes)
	}
	if i := bytes.Index(data, []byte("mdat")); i < 4 || binary.BigEndian.Uint32(data[i-4:]) != 1 {
		t.Error("mdat has no 64-bit largesize")
	}
	if int64(len(data)) != st.Bytes {
		t.Errorf("%d bytes, Stats say %d", len(data), st.Bytes)
	}
	checkProbe(t, fx, out, probeDuration(t, "av.flv"))
	mediatest.DecodeClean(t, out)
}

// TestFragmentsStartWithKeyframe checks the flush order the Writer documents: Flush
// right after a keyframe ends the fragment before it, so every keyframe opens a
// fragment (the one-second rule may still cut a long GOP in between).
func TestFragmentsStartWithKeyframe(t *testing.T) {
	fx := loadFixture(t, "av.flv")
	path := filepath.Join(t.TempDir(), "a.part")
	writeFMP4(t, fx, path, writeOptions{})
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	file, err := mp4.DecodeFile(bytes.NewReader(data), mp4.WithDecodeFlags(mp4.DecStartOnMoof))
	if err != nil {
		t.Fatal(err)
	}
	var keyframes int
	for _, seg := range file.Segments {
		for _, frag := range seg.Fragments {
			for _, traf := range frag.Moof.Trafs {
				if traf.Tfhd.TrackID != 1 {
					continue
				}
				for i, smp := range traf.Trun.Samples {
					if mp4.DecodeSampleFlags(smp.Flags).SampleIsNonSync {
						continue
					}
					keyframes++
					if i != 0 {
						t.Errorf("fragment %d: keyframe is video sample %d, want 0", frag.Moof.Mfhd.SequenceNumber, i)
					}
				}
			}
		}
	}
	if keyframes != 4 {
		t.Errorf("%d keyframes, want 4", keyframes)
	}
}
