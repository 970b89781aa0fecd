package recorder

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
)

// streamSpan returns the start and end, in seconds, of one stream of a file ("a" or
// "v"), from its packets' decoding timestamps and durations; ok is false without that
// stream.
func streamSpan(t *testing.T, file, stream string) (start, end float64, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-of", "json", "-select_streams", stream,
		"-show_entries", "packet=dts_time,duration_time", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var r struct {
		Packets []struct {
			DTS string `json:"dts_time"`
			Dur string `json:"duration_time"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Packets) == 0 {
		return 0, 0, false
	}
	start = 1e9
	for _, p := range r.Packets {
		dts, _ := strconv.ParseFloat(p.DTS, 64)
		dur, _ := strconv.ParseFloat(p.Dur, 64)
		start, end = min(start, dts), max(end, dts+dur)
	}
	return start, end, true
}

// publish pushes pkts to live/id over RTMP with their exact timestamps, then ends the
// push and waits until the server has ended it (it has then handled every packet).
func (r *rig) publish(t *testing.T, id string, pkts []*media.Packet) {
	t.Helper()
	pub := mediatest.PublishRTMP(t, "rtmp://"+r.rtmpAddr+"/live/"+id+"?record=flv|mp4")
	mediatest.WaitFor(t, id+" to be live", 10*time.Second, func() bool { return r.srv.Hub().Lookup("live", id) != nil })
	for _, p := range pkts {
		if err := pub.WritePacket(p); err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
	}
	if err := pub.Unpublish(); err != nil {
		t.Fatalf("unpublish %s: %v", id, err)
	}
	mediatest.WaitFor(t, id+" to end", 10*time.Second, func() bool { return r.srv.Hub().Lookup("live", id) == nil })
}

// A push whose AVC sequence header is garbage records its audio from the start, and its
// video from the first keyframe after a valid header; a push without any sequence
// header records nothing and says why.
func TestInvalidSequenceHeader(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	fixture := readFixture(t, "av.flv")
	garbage := make([]byte, 40)
	rnd := rand.New(rand.NewPCG(7, 9))
	for i := range garbage {
		garbage[i] = byte(rnd.UintN(256))
	}
	var valid *media.Packet
	for _, p := range fixture {
		if p.Kind == media.KindVideo && p.SequenceHeader {
			valid = p
		}
	}
	bad, err := media.NewPacket(media.KindVideo, 0, append(append([]byte(nil), valid.Body()[:5]...), garbage...))
	if err != nil || !bad.SequenceHeader {
		t.Fatalf("bad header %+v, %v", bad, err)
	}
	if _, err := media.ParseAVCConfig(bad.Payload()); err == nil {
		t.Fatal("the garbage parses as an AVCDecoderConfigurationRecord")
	}
	// The fixture: 4 s, keyframes every second; the valid header comes back before
	// the keyframe at cut, which starts the second fragment. Each fragment's timeline
	// starts at its first packet: the audio-only one at its first audio frame.
	var withBad, badThenValid, noHeaders []*media.Packet
	var cut uint32
	keyframes := 0
	for _, p := range fixture {
		if p.Kind == media.KindVideo && p.Keyframe && !p.SequenceHeader {
			if keyframes++; keyframes == 3 {
				cut = p.Timestamp
				badThenValid = append(badThenValid, valid.WithTimestamp(p.Timestamp))
			}
		}
		if p == valid {
			withBad, badThenValid = append(withBad, bad), append(badThenValid, bad)
			continue
		}
		withBad, badThenValid = append(withBad, p), append(badThenValid, p)
		if !p.SequenceHeader {
			noHeaders = append(noHeaders, p)
		}
	}
	all, audioFrames := frameSpans(fixture)

	r := newRig(t, DefaultConfig())
	r.publish(t, "badavc", withBad)
	r.publish(t, "recovers", badThenValid)
	r.publish(t, "noheaders", noHeaders)
	r.stop()

	// Timestamps are in ms; MP4 rounds them to its timescale.
	near := func(got, want float64) bool { return got > want-0.002 && got < want+0.002 }
	t.Run("invalid header only: the audio is recorded", func(t *testing.T) {
		for _, ext := range []string{"*.flv", "*.mp4"} {
			files := r.recordings(t, "badavc", ext)
			if len(files) != 1 {
				t.Fatalf("%s: %v, want one recording", ext, files)
			}
			if _, _, ok := streamSpan(t, files[0], "v"); ok {
				t.Errorf("%s has a video stream", files[0])
			}
			want := all["a"]
			if s, e, ok := streamSpan(t, files[0], "a"); !ok || !near(s, 0) || !near(e, want.end-want.start) {
				t.Errorf("%s: audio %.3f..%.3f s, want 0..%.3f", filepath.Base(files[0]), s, e, want.end-want.start)
			}
		}
	})
	t.Run("valid header later: video from the next keyframe", func(t *testing.T) {
		for _, ext := range []string{"*.flv", "*.mp4"} {
			files := r.recordings(t, "recovers", ext)
			if len(files) != 2 {
				t.Fatalf("%s: %v, want an audio-only fragment and an audio+video one", ext, files)
			}
			if _, _, ok := streamSpan(t, files[0], "v"); ok {
				t.Errorf("%s has a video stream", files[0])
			}
			// The audio goes on across the cut, each frame in one fragment: which side
			// of the keyframe the frames near it fall on is the order they arrived in.
			base, a := float64(cut)/1000, all["a"]
			s1, e1, ok1 := streamSpan(t, files[0], "a")
			s2, e2, ok2 := streamSpan(t, files[1], "a")
			if !ok1 || !ok2 || !near(s1, 0) || !near(e1+a.start, s2+base) || !near(e2, a.end-base) {
				t.Errorf("audio %.3f..%.3f s, then %.3f..%.3f s after the cut at %.3f: want from %.3f (push time) to %.3f without a gap",
					s1, e1, s2, e2, base, a.start, a.end)
			}
			v := all["v"]
			if s, e, ok := streamSpan(t, files[1], "v"); !ok || !near(s, 0) || !near(e, v.end-base) {
				t.Errorf("%s: video %.3f..%.3f s, want 0..%.3f", filepath.Base(files[1]), s, e, v.end-base)
			}
			_, _, _, n1 := mediatest.ProbeFrames(t, files[0]).Stream("audio")
			_, _, _, n2 := mediatest.ProbeFrames(t, files[1]).Stream("audio")
			if n1+n2 != audioFrames {
				t.Errorf("%d + %d audio frames recorded, %d pushed", n1, n2, audioFrames)
			}
			pr := mediatest.ProbeFrames(t, files[1])
			if vc, w, h, n := pr.Stream("video"); vc != "h264" || w != 320 || h != 240 || n != 50 {
				t.Errorf("%s: video %s %dx%d, %d frames decoded", filepath.Base(files[1]), vc, w, h, n)
			}
		}
	})
	logs := r.logs.String()
	t.Run("the invalid header is logged once per push", func(t *testing.T) {
		for _, id := range []string{"badavc", "recovers"} {
			if n := countLines(logs, "video sequence header invalid", "stream=live/"+id); n != 1 {
				t.Errorf("%s: logged %d times, want once", id, n)
			}
		}
	})
	t.Run("no sequence headers: nothing recorded, and why", func(t *testing.T) {
		if files := r.recordings(t, "noheaders", "*"); len(files) != 0 {
			t.Errorf("recorded %v", files)
		}
		for _, want := range []string{"video frames without a video sequence header", "audio frames without an audio sequence header",
			"push ended with nothing recorded"} {
			if n := countLines(logs, want, "stream=live/noheaders"); n != 1 {
				t.Errorf("%q logged %d times, want once", want, n)
			}
		}
	})
}

type span struct{ start, end float64 }

// frameSpans returns, for "a" and "v", the span of the audio frames and the video
// pictures of pkts: from the first frame's timestamp to the end of the last one (its
// timestamp plus the distance from the frame before), in seconds; and the number of
// audio frames.
func frameSpans(pkts []*media.Packet) (map[string]span, int) {
	first, last, step := map[string]uint32{}, map[string]uint32{}, map[string]uint32{}
	seen := map[string]bool{}
	audio := 0
	for _, p := range pkts {
		k := map[media.Kind]string{media.KindAudio: "a", media.KindVideo: "v"}[p.Kind]
		if k == "" || p.SequenceHeader || (k == "v" && p.Body()[1] != 1) {
			continue
		}
		if k == "a" {
			audio++
		}
		if !seen[k] {
			first[k], seen[k] = p.Timestamp, true
		}
		step[k], last[k] = p.Timestamp-last[k], p.Timestamp
	}
	out := map[string]span{}
	for k := range seen {
		out[k] = span{float64(first[k]) / 1000, float64(last[k]+step[k]) / 1000}
	}
	return out, audio
}

// countLines counts the log lines holding every one of subs.
func countLines(logs string, subs ...string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

// The tail of a push after its last record_interval cut is a fragment, however short:
// the fragments of a push add up to the push (a replay stitched from them is as long).
// Only a recording shorter than 1 s in all is discarded.
func TestShortTailFragmentKept(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	var pkts []*media.Packet
	for _, p := range readFixture(t, "av.flv") {
		if p.Timestamp < 3500 { // keyframes every second: a 3 s interval leaves a 0.5 s tail
			pkts = append(pkts, p)
		}
	}
	all, _ := frameSpans(pkts)
	r := newRig(t, DefaultConfig())
	pub := mediatest.PublishRTMP(t, "rtmp://"+r.rtmpAddr+"/live/tail?record=flv|mp4&record_interval=3")
	mediatest.WaitFor(t, "tail to be live", 10*time.Second, func() bool { return r.srv.Hub().Lookup("live", "tail") != nil })
	for _, p := range pkts {
		if err := pub.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Unpublish(); err != nil {
		t.Fatal(err)
	}
	mediatest.WaitFor(t, "tail to end", 10*time.Second, func() bool { return r.srv.Hub().Lookup("live", "tail") == nil })
	r.stop()
	// A PushSink hears of the recording before its first fragment and after its last.
	calls := r.rec.sink.(*LocalSink).Calls()
	var frags int
	for _, c := range calls {
		if strings.HasPrefix(c, "fragment ") {
			frags++
		}
	}
	if len(calls) != frags+2 || !strings.HasPrefix(calls[0], "start ") || !strings.HasPrefix(calls[len(calls)-1], "done ") || frags != 4 {
		t.Errorf("sink calls %q: want start, the 4 fragments, done", calls)
	}
	want := all["v"].end - all["v"].start
	for _, ext := range []string{"*.flv", "*.mp4"} {
		files := r.recordings(t, "tail", ext)
		if len(files) != 2 {
			t.Fatalf("%s: %v, want the interval's fragment and the tail", ext, files)
		}
		var sum float64
		for _, f := range files {
			s, e, _ := streamSpan(t, f, "v")
			sum += e - s
		}
		if sum < want-0.01 || sum > want+0.01 {
			t.Errorf("%s: video of the fragments %.3f s, want the push's %.3f s", ext, sum, want)
		}
	}
}
