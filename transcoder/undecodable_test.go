package transcoder

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/loadgen"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/fmp4"
)

// An MP4 whose H.264 samples cannot be decoded (the load generator's frames: a real
// sequence header, zeros for pictures) is bad input, for posters and transcodes alike:
// the job fails once instead of retrying (it failed with "create buffer: Invalid
// argument" and was retried 25 times).
func TestUndecodableVideoIsBadInput(t *testing.T) {
	dir := t.TempDir()
	part, src := filepath.Join(dir, "in.mp4.part"), filepath.Join(dir, "in.mp4")
	f, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	var w *fmp4.Writer
	var tracks fmp4.Tracks
	var pending []*media.Packet
	for fr := range (loadgen.Stream{}).Frames() {
		if fr.At > 3*time.Second {
			break
		}
		p, err := media.NewPacket(fr.Kind, uint32(fr.At.Milliseconds()), fr.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case p.Kind == media.KindVideo && p.SequenceHeader:
			tracks.Video, err = media.ParseAVCConfig(p.Payload())
		case p.Kind == media.KindAudio && p.SequenceHeader:
			tracks.Audio, err = media.ParseAACConfig(p.Payload())
		}
		if err != nil {
			t.Fatal(err)
		}
		if w == nil {
			if tracks.Video == nil || tracks.Audio == nil {
				pending = append(pending, p)
				continue
			}
			if w, err = fmp4.NewWriter(f, tracks); err != nil {
				t.Fatal(err)
			}
			for _, q := range pending {
				if err := w.WritePacket(q); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
		if p.Kind == media.KindVideo && p.Keyframe && !p.SequenceHeader || w.Pending() >= time.Second {
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := fmp4.FinalizeFile(part, src); err != nil {
		t.Fatal(err)
	}

	var jpeg bytes.Buffer
	if _, err := WriteThumbnail(context.Background(), src, &jpeg, ThumbnailOptions{}); !errors.Is(err, ErrBadInput) {
		t.Errorf("thumbnail: err = %v, want ErrBadInput", err)
	}
	sd, _ := FindTemplate(DefaultTemplates(), "sd")
	_, err = Transcode(context.Background(), src, []Output{{Template: sd, Format: FormatMP4, Path: filepath.Join(dir, "sd.mp4")}}, nil)
	if !errors.Is(err, ErrBadInput) {
		t.Errorf("transcode: err = %v, want ErrBadInput", err)
	}
}
