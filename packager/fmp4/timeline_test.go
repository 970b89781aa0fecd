package fmp4

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livetape/livetape/media"
)

// timedSample is one sample of a track as a file describes it, in the track's timescale.
type timedSample struct {
	decode uint64
	dur    uint32
	cto    int32
}

// nominalVideo is n video timestamps at 25 fps, from 0.
func nominalVideo(n int) []uint32 {
	ts := make([]uint32, n)
	for i := range ts {
		ts[i] = uint32(i * 40)
	}
	return ts
}

// nominalAudio is n AAC frame timestamps at 44.1 kHz, rounded to the millisecond as
// FLV carries them.
func nominalAudio(n int) []uint32 {
	ts := make([]uint32, n)
	for i := range ts {
		ts[i] = uint32((int64(i)*1024*1000 + 44100/2) / 44100)
	}
	return ts
}

// videoShapes are publisher timestamp habits, applied to 100 frames (4 s) of video.
var videoShapes = map[string]func(ts []uint32){
	"regular": func([]uint32) {},
	// 100 ms late, then the same timestamp again: 1,2,…,400, 500, 500, 480, 520…
	"late-repeated": func(ts []uint32) { ts[10], ts[11] = 500, 500 },
	"repeated":      func(ts []uint32) { ts[11], ts[12], ts[13], ts[14] = ts[10], ts[10], ts[10], ts[10] },
	// The clock steps back 300 ms and runs on from there.
	"backwards": func(ts []uint32) {
		for i := 30; i < len(ts); i++ {
			ts[i] -= 300
		}
	},
	// One frame stamped 200 ms early, among regular ones.
	"one-early": func(ts []uint32) { ts[40] -= 200 },
	// A 5 s hole (a stalled encoder).
	"jump": func(ts []uint32) {
		for i := 50; i < len(ts); i++ {
			ts[i] += 5000
		}
	},
	// Everything, in one push.
	"all": func(ts []uint32) {
		ts[10], ts[11] = 500, 500
		for i := 30; i < len(ts); i++ {
			ts[i] -= 300
		}
		for i := 50; i < len(ts); i++ {
			ts[i] += 5000
		}
		ts[70], ts[71], ts[72] = ts[69], ts[69], ts[69]
	},
}

// wantVideo is the documented placement of video frames stamped ts (ms) with
// composition offsets cts (ms): each at its own timestamp, or one tick after the
// previous frame when its timestamp is not after it; each lasting until the next; the
// last as long as the last forward step of the timestamps.
func wantVideo(ts []uint32, cts []int32) []timedSample {
	want := make([]timedSample, len(ts))
	var step uint32
	for i := range ts {
		d := uint64(ts[i]) * 90
		if i > 0 {
			d = max(d, want[i-1].decode+1)
			want[i-1].dur = uint32(d - want[i-1].decode)
			if ts[i] > ts[i-1] {
				step = ts[i] - ts[i-1]
			}
		}
		want[i] = timedSample{decode: d, cto: cts[i] * 90}
	}
	want[len(ts)-1].dur = step * 90
	return want
}

// TestWriterVideoTimeline writes video with each timestamp shape and checks, in the
// fragmented file and in the finalized one, every frame's decode time, duration and
// composition offset against the placement rule: the track ends where the timestamps
// say, whatever happened before.
func TestWriterVideoTimeline(t *testing.T) {
	fx := loadFixture(t, "av.flv")
	frames := fixtureFrames(fx, media.KindVideo)
	for name, shape := range videoShapes {
		t.Run(name, func(t *testing.T) {
			ts := nominalVideo(100)
			shape(ts)
			pkts := make([]*media.Packet, len(ts))
			cts := make([]int32, len(ts))
			for i := range ts {
				pkts[i] = frames[i%len(frames)].WithTimestamp(ts[i])
				cts[i] = pkts[i].CompositionTime
			}
			want := wantVideo(ts, cts)
			fragmented := writeTracks(t, Tracks{Video: fx.tracks.Video}, pkts)
			checkTimeline(t, "fragmented", fragmentedSamples(t, fragmented), want, VideoTimescale)
			checkTimeline(t, "finalized", progressiveSamples(t, finalize(t, fragmented)), want, VideoTimescale)
			last := want[len(want)-1]
			if end := last.decode + uint64(last.dur); end != uint64(ts[len(ts)-1]+40)*90 {
				t.Errorf("track ends at %d, want the last timestamp plus a frame, %d", end, (ts[len(ts)-1]+40)*90)
			}
		})
	}
}

// TestWriterAudioTimeline checks that AAC frames get exact 1024-sample durations while
// their timestamps are regular, yet follow the timestamps, never a free-running frame
// counter: a track whose timestamps run 1 % slow (an audio clock off, as in hours-long
// pushes), repeat or jump stays within a millisecond of them.
func TestWriterAudioTimeline(t *testing.T) {
	fx := loadFixture(t, "audio.flv")
	frames := fixtureFrames(fx, media.KindAudio)
	shapes := map[string]func(ts []uint32){
		"regular": func([]uint32) {},
		"slow-clock": func(ts []uint32) {
			for i := range ts {
				ts[i] = ts[i] * 101 / 100
			}
		},
		"repeated":  func(ts []uint32) { ts[21], ts[22] = ts[20], ts[20] },
		"backwards": func(ts []uint32) { ts[30] -= 100 },
		"jump": func(ts []uint32) {
			for i := 100; i < len(ts); i++ {
				ts[i] += 5000
			}
		},
	}
	const rate = 44100
	for name, shape := range shapes {
		t.Run(name, func(t *testing.T) {
			ts := nominalAudio(400) // 9.3 s
			shape(ts)
			pkts := make([]*media.Packet, len(ts))
			for i := range ts {
				pkts[i] = frames[i%len(frames)].WithTimestamp(ts[i])
			}
			for _, file := range []struct {
				name    string
				samples map[uint32][]timedSample
			}{
				{"fragmented", fragmentedSamples(t, writeTracks(t, Tracks{Audio: fx.tracks.Audio}, pkts))},
				{"finalized", progressiveSamples(t, finalize(t, writeTracks(t, Tracks{Audio: fx.tracks.Audio}, pkts)))},
			} {
				got := file.samples[1] // track 1: the only one
				if len(got) != len(ts) {
					t.Fatalf("%s: %d frames, want %d", file.name, len(got), len(ts))
				}
				regular := 0
				for i, s := range got {
					at := (int64(ts[i])*rate + 500) / 1000
					if d := int64(s.decode) - at; (d < -rate/1000-1 || d > rate/1000+1) && !(i > 0 && ts[i] <= ts[i-1]) {
						t.Errorf("%s: frame %d at %d, its timestamp %d ms says %d", file.name, i, s.decode, ts[i], at)
					}
					if i > 0 && s.decode != got[i-1].decode+uint64(got[i-1].dur) {
						t.Errorf("%s: frame %d at %d, the previous ends at %d", file.name, i, s.decode, got[i-1].decode+uint64(got[i-1].dur))
					}
					if s.dur == 1024 {
						regular++
					}
				}
				if last := got[len(got)-1]; last.dur != 1024 {
					t.Errorf("%s: last frame lasts %d, want 1024", file.name, last.dur)
				}
				// Regular timestamps give exact frame durations; slow ones cannot.
				if name == "regular" && regular != len(got) {
					t.Errorf("%s: %d of %d frames last 1024 samples", file.name, regular, len(got))
				}
			}
		})
	}
}

// TestWriterAVTimeline writes both tracks from the av fixture with a late and repeated
// video timestamp and a 5 s jump on both, and checks that they end together where the
// timestamps say, in the fragmented, the finalized and a recovered file.
func TestWriterAVTimeline(t *testing.T) {
	fx := loadFixture(t, "av.flv")
	vts := nominalVideo(100)
	vts[10], vts[11] = 500, 500
	nominalA := nominalAudio(173) // to 4.0 s
	ats := slices.Clone(nominalA)
	// Both tracks jump 5 s at 2 s.
	for i := 50; i < len(vts); i++ {
		vts[i] += 5000
	}
	for i := range ats {
		if ats[i] >= 2000 {
			ats[i] += 5000
		}
	}
	// Interleave as a publisher sends: by nominal time, video first.
	var pkts []*media.Packet
	video, audio := fixtureFrames(fx, media.KindVideo), fixtureFrames(fx, media.KindAudio)
	for vi, ai := 0, 0; vi < len(vts) || ai < len(ats); {
		if ai == len(ats) || vi < len(vts) && uint32(vi*40) <= nominalA[ai] {
			pkts = append(pkts, video[vi%len(video)].WithTimestamp(vts[vi]))
			vi++
		} else {
			pkts = append(pkts, audio[ai%len(audio)].WithTimestamp(ats[ai]))
			ai++
		}
	}
	cts := make([]int32, len(vts))
	for i := range cts {
		cts[i] = video[i%len(video)].CompositionTime
	}
	want := wantVideo(vts, cts)
	fragmented := writeTracks(t, fx.tracks, pkts)
	files := map[string][]byte{"fragmented": fragmented, "finalized": finalize(t, fragmented)}
	for name, data := range files {
		var samples map[uint32][]timedSample
		if name == "fragmented" {
			samples = fragmentedSamples(t, data)
		} else {
			samples = progressiveSamples(t, data)
		}
		checkTimeline(t, name, samples, want, VideoTimescale)
		a := samples[2]
		if len(a) != len(ats) {
			t.Fatalf("%s: %d audio frames, want %d", name, len(a), len(ats))
		}
		vEnd := float64(want[len(want)-1].decode+uint64(want[len(want)-1].dur)) / VideoTimescale
		aEnd := float64(a[len(a)-1].decode+uint64(a[len(a)-1].dur)) / 44100
		if vEnd < 9 || aEnd < 9 || vEnd-aEnd > 0.04 || aEnd-vEnd > 0.04 {
			t.Errorf("%s: video ends at %.3f s, audio at %.3f s: want both at ~9.0 s", name, vEnd, aEnd)
		}
	}

	// A crash in the last fragment: what is recovered has the same timeline, up to
	// where it stops.
	path := filepath.Join(t.TempDir(), "rec.mp4.part")
	if err := os.WriteFile(path, fragmented[:len(fragmented)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Recover(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	recovered, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := progressiveSamples(t, finalize(t, recovered))[1]
	if len(got) < len(want)/2 || len(got) >= len(want) {
		t.Fatalf("recovered %d of %d video frames", len(got), len(want))
	}
	checkTimeline(t, "recovered", map[uint32][]timedSample{1: got[:len(got)-1]}, want[:len(got)-1], VideoTimescale)
}

// fixtureFrames are the media frames of kind in fx, sequence headers and the AVC end of
// sequence left out.
func fixtureFrames(fx *fixture, kind media.Kind) []*media.Packet {
	var frames []*media.Packet
	for _, p := range fx.pkts {
		if p.Kind == kind && !p.SequenceHeader && (kind != media.KindVideo || p.Body()[1] == 1) {
			frames = append(frames, p)
		}
	}
	return frames
}

// writeTracks writes pkts through a Writer as the recorder does (a flush at every video
// keyframe and whenever a second is pending) and returns the fragmented file.
func writeTracks(t *testing.T, tracks Tracks, pkts []*media.Packet) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, tracks)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		if err := w.WritePacket(p); err != nil {
			t.Fatal(err)
		}
		if p.Kind == media.KindVideo && p.Keyframe || w.Pending() >= time.Second {
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

func finalize(t *testing.T, fragmented []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if _, err := Finalize(bytes.NewReader(fragmented), &out); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// fragmentedSamples reads every track's samples from the fragments (tfdt and trun).
func fragmentedSamples(t *testing.T, data []byte) map[uint32][]timedSample {
	t.Helper()
	file, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	samples := map[uint32][]timedSample{}
	for _, seg := range file.Segments {
		for _, frag := range seg.Fragments {
			for _, traf := range frag.Moof.Trafs {
				trex, _ := file.Init.Moov.Mvex.GetTrex(traf.Tfhd.TrackID)
				d := traf.Tfdt.BaseMediaDecodeTime()
				for _, trun := range traf.Truns {
					trun.AddSampleDefaultValues(traf.Tfhd, trex)
					for _, s := range trun.Samples {
						samples[traf.Tfhd.TrackID] = append(samples[traf.Tfhd.TrackID], timedSample{d, s.Dur, s.CompositionTimeOffset})
						d += uint64(s.Dur)
					}
				}
			}
		}
	}
	return samples
}

// progressiveSamples reads every track's samples from its stts and ctts.
func progressiveSamples(t *testing.T, data []byte) map[uint32][]timedSample {
	t.Helper()
	file, err := mp4.DecodeFile(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	samples := map[uint32][]timedSample{}
	for _, trak := range file.Moov.Traks {
		stbl := trak.Mdia.Minf.Stbl
		var d uint64
		for i, n := range stbl.Stts.SampleCount {
			for range n {
				nr := uint32(len(samples[trak.Tkhd.TrackID]) + 1)
				var cto int32
				if stbl.Ctts != nil {
					cto = stbl.Ctts.GetCompositionTimeOffset(nr)
				}
				samples[trak.Tkhd.TrackID] = append(samples[trak.Tkhd.TrackID], timedSample{d, stbl.Stts.SampleTimeDelta[i], cto})
				d += uint64(stbl.Stts.SampleTimeDelta[i])
			}
		}
	}
	return samples
}

// checkTimeline compares track 1 (video) of samples with want, sample by sample.
func checkTimeline(t *testing.T, file string, samples map[uint32][]timedSample, want []timedSample, timescale int) {
	t.Helper()
	got := samples[1]
	if len(got) != len(want) {
		t.Fatalf("%s: %d samples, want %d", file, len(got), len(want))
	}
	var errs int
	for i := range want {
		if got[i] != want[i] {
			if errs++; errs <= 5 {
				t.Errorf("%s: sample %d at %s, want %s", file, i, fmtSample(got[i], timescale), fmtSample(want[i], timescale))
			}
		}
	}
	if errs > 5 {
		t.Errorf("%s: %d samples differ", file, errs)
	}
}

func fmtSample(s timedSample, timescale int) string {
	return fmt.Sprintf("%d (%.3f s) lasting %d, offset %d", s.decode, float64(s.decode)/float64(timescale), s.dur, s.cto)
}
