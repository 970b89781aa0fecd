package recorder

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
)

// A recorder that has caught up with its push holds nothing in write buffers: what it
// was sent is in the recording's file, not in memory kept per stream (the writers share
// a few buffers, given back whenever the recorder catches up). A push that pauses after
// 2.5 s, past the last sync at 2 s, must find all of its frames in the FLV part.
func TestRecorderWritesOutWhenCaughtUp(t *testing.T) {
	r := newRig(t, DefaultConfig())
	var pkts []*media.Packet
	frames := 0
	for _, p := range readFixture(t, "av.flv") {
		if p.Timestamp >= 2500 {
			break
		}
		pkts = append(pkts, p)
		if !p.SequenceHeader && p.Kind != media.KindData {
			frames++
		}
	}
	pub := mediatest.PublishRTMP(t, "rtmp://"+r.rtmpAddr+"/live/caughtup?record=flv")
	defer pub.Close()
	for _, p := range pkts {
		if err := pub.WritePacket(p); err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
	// The push stays open: nothing but catching up writes the last frames out.
	inPart := func() int {
		n := 0
		filepath.WalkDir(r.spool, func(path string, d fs.DirEntry, err error) error {
			if err != nil || !strings.HasSuffix(path, ".flv"+partSuffix) {
				return nil
			}
			f, err := os.Open(path)
			if err != nil {
				return nil
			}
			defer f.Close()
			rd, err := flv.NewReader(f)
			if err != nil {
				return nil
			}
			for {
				p, err := rd.ReadPacket()
				if err != nil {
					return nil
				}
				if !p.SequenceHeader && p.Kind != media.KindData {
					n++
				}
			}
		})
		return n
	}
	mediatest.WaitFor(t, "every frame pushed in the FLV part", 20*time.Second, func() bool { return inPart() == frames })
}
