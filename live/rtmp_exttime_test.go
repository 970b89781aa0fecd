package live

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/stream"
)

// extBase puts the av fixture's 4 s across 0xFFFFFF ms (4 h 39 min 37 s), where RTMP
// timestamps need the extended field.
const extBase = 0xffffff - 2000

// collect reads sub until it has n packets, failing after d.
func collect(t *testing.T, sub *stream.Subscriber, n int, d time.Duration) []*media.Packet {
	t.Helper()
	var got []*media.Packet
	timeout := time.After(d)
	for len(got) < n {
		if p, ok := sub.TryNext(); ok {
			got = append(got, p)
			continue
		}
		select {
		case <-sub.Ready():
		case <-timeout:
			t.Fatalf("got %d of %d packets after %v", len(got), n, d)
		}
	}
	return got
}

func timestamps(pkts []*media.Packet, kind media.Kind) []uint32 {
	var ts []uint32
	for _, p := range pkts {
		if p.Kind == kind {
			ts = append(ts, p.Timestamp)
		}
	}
	return ts
}

// TestExtendedTimestampIngest: ffmpeg, like OBS since 2024, repeats the extended
// timestamp in type-3 chunks (RTMP 5.3.1.3); go-rtmp v0.0.7 read it as payload and
// panicked ("invalid state"), ending the push 4 h 39 min in. Every packet must arrive,
// at the timestamp ffmpeg gives it (the same ffmpeg command writing a file says which).
func TestExtendedTimestampIngest(t *testing.T) {
	needFFmpeg(t)
	obs := newRecordingObserver()
	s := startServer(t, nil, obs)
	ffmpeg := func(output string) *exec.Cmd {
		return exec.Command("ffmpeg", "-v", "error", "-i", "../testdata/av.flv", "-c", "copy",
			"-output_ts_offset", fmt.Sprintf("%d.%03d", extBase/1000, extBase%1000), "-f", "flv", output)
	}
	ref := filepath.Join(t.TempDir(), "ref.flv")
	if b, err := ffmpeg(ref).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	want := mediatest.ReadFLV(t, ref)
	if last := want[len(want)-1].Timestamp; last <= 0xffffff {
		t.Fatalf("the reference ends at %d, before 0xFFFFFF", last)
	}

	push := ffmpeg("rtmp://" + s.rtmpAddr + "/live/ext")
	out := &mediatest.SyncBuffer{}
	push.Stderr = out
	if err := push.Start(); err != nil {
		t.Fatal(err)
	}
	defer push.Process.Kill()
	// ffmpeg waits for the answer to publish, given after the start event: subscribing
	// there loses no packet.
	ev := obs.next(t)
	if ev.kind != "start" {
		t.Fatalf("first event %+v", ev)
	}
	sub, _, err := ev.pub.Stream.Subscribe(0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := push.Wait(); err != nil {
		t.Fatalf("ffmpeg push: %v\n%s", err, out.String())
	}
	if ev := obs.next(t); ev.kind != "end" || ev.reason != stream.EndNormal {
		t.Fatalf("push ended %s %s, want end normal", ev.kind, ev.reason)
	}
	var got []*media.Packet
	for p := range sub.Packets() {
		got = append(got, p)
	}
	for _, kind := range []media.Kind{media.KindVideo, media.KindAudio} {
		if gotTS, wantTS := timestamps(got, kind), timestamps(want, kind); !slices.Equal(gotTS, wantTS) {
			t.Errorf("%v timestamps:\n got %v\nwant %v", kind, gotTS, wantTS)
		}
	}
}

// TestExtendedTimestampPlay: RTMP play writes the extended timestamp in type-3 chunks
// too, where ffmpeg reads it: without it ffmpeg takes 4 bytes of payload for it and
// loses the stream. The publisher loops the fixture above 0xFFFFFF, each loop starting
// earlier than the one before, at a keyframe larger than a chunk: the jump back is sent
// in a type-0 header with an extended timestamp, and the keyframe spans two chunks.
// ffprobe must read the timestamps pushed. (The fixture's keyframes are smaller than
// a chunk: the first gets filler data, a NAL unit decoders skip, to span two.)
func TestExtendedTimestampPlay(t *testing.T) {
	needFFmpeg(t)
	s := startServer(t, nil)
	pkts := mediatest.ReadFLV(t, "../testdata/av.flv")
	pub := mediatest.PublishRTMP(t, "rtmp://"+s.rtmpAddr+"/live/extplay")
	const loops = 20
	loopBase := func(loop uint32) uint32 { return 0xffffff + 1000 + (loops-loop)*10000 }
	bigKey := slices.IndexFunc(pkts, func(p *media.Packet) bool {
		return p.Kind == media.KindVideo && p.Keyframe && !p.SequenceHeader
	})
	pkts[bigKey] = withFiller(t, pkts[bigKey], outChunkSize)
	loopPackets := func(loop uint32) []*media.Packet {
		if loop == 0 {
			return pkts
		}
		return pkts[bigKey:]
	}
	var pushed []uint32 // video frame timestamps, in order
	for loop := range uint32(loops) {
		for _, p := range loopPackets(loop) {
			if isVideoFrame(p) {
				pushed = append(pushed, loopBase(loop)+p.Timestamp)
			}
		}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// A live source, ten times faster than real time: the player keeps up, so its
		// queue never overflows and it gets every frame from its first keyframe on.
		tick := time.NewTicker(4 * time.Millisecond)
		defer tick.Stop()
		for loop := range uint32(loops) {
			for _, p := range loopPackets(loop) {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if pub.Write(p.Kind, loopBase(loop)+p.Timestamp, p.Body()) != nil {
					return
				}
			}
		}
	}()
	defer func() { close(stop); <-done }()
	s.waitLive(t, "live", "extplay")

	const frames = 150 // several loops: several jumps back
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "packet=dts",
		"-of", "csv=p=0", "-read_intervals", fmt.Sprintf("%%+#%d", frames), "rtmp://"+s.rtmpAddr+"/live/extplay").Output()
	if err != nil {
		t.Fatalf("ffprobe play: %v", err)
	}
	var got []uint32
	for _, f := range strings.Fields(string(out)) {
		n, err := strconv.ParseUint(strings.TrimSuffix(f, ","), 10, 32)
		if err != nil {
			t.Fatalf("ffprobe packet dts %q: %v", f, err)
		}
		got = append(got, uint32(n))
	}
	i := slices.Index(pushed, got[0])
	if len(got) != frames || i < 0 || i+frames > len(pushed) || !slices.Equal(got, pushed[i:i+frames]) {
		t.Errorf("played video timestamps are not a run of the pushed ones:\n got %v\npushed %v", got, pushed)
	}
}

// withFiller returns the AVC frame p with a filler-data NAL unit (type 12: 0xFF bytes,
// then the RBSP stop bit) of n bytes appended, for tests that need a large frame.
func withFiller(t testing.TB, p *media.Packet, n int) *media.Packet {
	t.Helper()
	body := binary.BigEndian.AppendUint32(slices.Clone(p.Body()), uint32(n))
	body = append(body, 12)
	body = append(body, bytes.Repeat([]byte{0xff}, n-2)...)
	body = append(body, 0x80)
	big, err := media.NewPacket(p.Kind, p.Timestamp, body)
	if err != nil {
		t.Fatal(err)
	}
	return big
}

// isVideoFrame is false for AVC sequence headers and end-of-sequence tags, which ffmpeg
// writes itself around what it copies.
func isVideoFrame(p *media.Packet) bool {
	b := p.Body()
	return p.Kind == media.KindVideo && !p.SequenceHeader && !(len(b) > 1 && b[0]&0x0f == media.VideoCodecAVC && b[1] == 2)
}

// publish publishes app/name without waiting for the answers (the server handles
// them in order).
func (c *rawRTMP) publish(t testing.TB, app, name string) {
	t.Helper()
	c.send(t, publishCommands(app, name))
}

// TestExtendedTimestampType3Chunks: a publisher that sends every message with a type-0
// header, across 0xFFFFFF, in 128-byte chunks. OBS (librtmp since 2024) and ffmpeg
// repeat the extended timestamp in the type-3 chunks, as RTMP 5.3.1.3 says; go-rtmp
// v0.0.7 read it as payload and panicked ("invalid state"). rtmpdump and older OBS do
// not repeat it. Both must arrive intact, at the timestamps pushed.
func TestExtendedTimestampType3Chunks(t *testing.T) {
	obs := newRecordingObserver()
	s := startServer(t, nil, obs)
	pkts := mediatest.ReadFLV(t, "../testdata/av.flv")
	for _, repeat := range []bool{true, false} {
		t.Run(fmt.Sprintf("repeated=%v", repeat), func(t *testing.T) {
			c := dialRaw(t, s.rtmpAddr)
			c.publish(t, "live", "type3")
			ev := obs.next(t)
			if ev.kind != "start" {
				t.Fatalf("first event %+v", ev)
			}
			sub, _, err := ev.pub.Stream.Subscribe(0)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			typeIDs := map[media.Kind]byte{media.KindAudio: 8, media.KindVideo: 9}
			var sent []*media.Packet
			for _, p := range pkts {
				if p.Kind == media.KindData {
					continue
				}
				ts := extBase + p.Timestamp
				c.send(t, chunkMessage(int(4+p.Kind), typeIDs[p.Kind], 1, ts, p.Body(), 128, repeat))
				sent = append(sent, p.WithTimestamp(ts))
			}
			got := collect(t, sub, len(sent), 20*time.Second)
			for i := range sent {
				if got[i].Kind != sent[i].Kind || got[i].Timestamp != sent[i].Timestamp || !bytes.Equal(got[i].Body(), sent[i].Body()) {
					t.Fatalf("packet %d: got %v at %d (%d bytes), want %v at %d (%d bytes)", i,
						got[i].Kind, got[i].Timestamp, len(got[i].Body()), sent[i].Kind, sent[i].Timestamp, len(sent[i].Body()))
				}
			}
			c.Close()
			if ev := obs.next(t); ev.kind != "end" {
				t.Fatalf("second event %+v", ev)
			}
		})
	}
}
