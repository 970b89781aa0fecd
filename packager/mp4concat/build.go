package mp4concat

import (
	"bytes"
	"io"
	"math"
	"slices"
	"time"

	"github.com/livetape/livetape/packager/mp4box"
)

// GapMode says what becomes of the time between two inputs.
type GapMode int

const (
	// CloseGaps starts each input where the previous one ends: the output lasts the
	// sum of the inputs.
	CloseGaps GapMode = iota
	// KeepGaps starts each input as long after the first as it started on the wall
	// clock (Input.Start), the last sample before a gap lasting until it ends. An
	// input that started before the previous one ended follows it directly.
	KeepGaps
)

// Options tune Concat and Clip.
type Options struct {
	Gaps GapMode
	// Progress, when set, is called by WriteTo as bytes are written, with the bytes
	// done so far and the movie's size.
	Progress func(done, total int64)
}

// piece is the part of one input that goes into the output: a sample range per track,
// and where it goes on the output timeline.
type piece struct {
	src    *source
	input  int32
	sel    [nKinds]span
	origin int64 // input time (ns) placed at `at`
	at     int64 // output time (ns)
}

// span is a range of sample indexes [first, end).
type span struct{ first, end int }

func (s span) empty() bool { return s.end <= s.first }

// builder gathers the output's sample tables piece by piece.
type builder struct {
	opts   Options
	inputs []io.ReaderAt
	tracks [nKinds]*outTrack
	chunks []outChunk // file order
	end    int64      // output time (ns) where the latest track ends
}

// outTrack is one track of the output, in the same compact form as the inputs'.
type outTrack struct {
	tmpl      *track // the first input's track of this kind: boxes and config
	timescale uint32
	start     uint64 // empty edit before the first sample, ticks
	end       uint64 // decode time after the last sample, start included

	mp4box.SampleTable
}

// outChunk is a run of samples of one track, contiguous in one input.
type outChunk struct {
	kind  kind
	input int32
	off   int64
	size  int64
	n     uint32
}

// add appends a piece to the output. Each track's first sample of the piece is placed
// at its time on the output timeline: the last sample before it is stretched to
// reach it (a gap) or shortened (an overlap: never below one tick).
func (b *builder) add(p piece) error {
	var perKind [nKinds][]outChunk
	for k := range nKinds {
		t := p.src.tracks[k]
		sel := p.sel[k]
		if t == nil || sel.empty() {
			continue
		}
		o := b.tracks[k]
		if o == nil {
			o = &outTrack{tmpl: t, timescale: t.timescale}
			b.tracks[k] = o
		} else if !bytes.Equal(o.tmpl.config, t.config) {
			return mismatch(p.src.in.Name, k, o.tmpl.config, t.config)
		}
		first := int64(t.start + t.dts(sel.first) - t.dts(t.lead))
		target := first + nsToTicks(p.at-p.origin, t.timescale)
		if len(o.Sizes) == 0 {
			o.start = uint64(max(target, 0))
			o.end = o.start
		} else {
			o.moveEnd(max(target, 0))
		}
		o.append(t, sel)
		perKind[k] = t.chunksOf(sel, k, p.input)
		b.end = max(b.end, ticksToNs(o.end, o.timescale))
	}
	// Both tracks' chunks in the order of the input file: reads stay sequential.
	merged := make([]outChunk, 0, len(perKind[video])+len(perKind[audio]))
	v, a := perKind[video], perKind[audio]
	for len(v) > 0 || len(a) > 0 {
		if len(a) == 0 || len(v) > 0 && v[0].off <= a[0].off {
			merged, v = append(merged, v[0]), v[1:]
		} else {
			merged, a = append(merged, a[0]), a[1:]
		}
	}
	b.chunks = append(b.chunks, merged...)
	return nil
}

// moveEnd makes the last sample end at target: longer for a gap, shorter (but at
// least one tick) for an overlap.
func (o *outTrack) moveEnd(target int64) {
	lastDelta := int64(o.Stts[len(o.Stts)-1].Delta)
	delta := lastDelta + target - int64(o.end)
	delta = min(max(delta, 1), math.MaxUint32)
	if delta == lastDelta {
		return
	}
	o.end = uint64(int64(o.end) + delta - lastDelta)
	o.SetLastDelta(uint32(delta))
}

// append copies the tables of t's samples in sel.
func (o *outTrack) append(t *track, sel span) {
	t.eachSample(sel, func(i int, delta uint32, cto int32, sync bool) {
		o.Add(t.sizes[i], delta, cto, sync)
		o.end += uint64(delta)
	})
}

// eachSample calls fn for the samples in sel with their duration, composition
// offset and whether they are sync samples.
func (t *track) eachSample(sel span, fn func(i int, delta uint32, cto int32, sync bool)) {
	ti, tleft := 0, uint32(0) // stts run and samples left in it
	ci, cleft := 0, uint32(0) // ctts run
	si := 0                   // next sync sample number
	// Position the run cursors at sel.first.
	skip := func(n int, count func(int) uint32) (run int, left uint32) {
		for ; ; run++ {
			if c := count(run); uint32(n) < c {
				return run, c - uint32(n)
			} else {
				n -= int(c)
			}
		}
	}
	ti, tleft = skip(sel.first, func(r int) uint32 { return t.stts[r].count })
	if t.ctts != nil {
		ci, cleft = skip(sel.first, func(r int) uint32 { return t.ctts[r].count })
	}
	if t.syncs != nil {
		si, _ = slices.BinarySearch(t.syncs, uint32(sel.first+1))
	}
	for i := sel.first; i < sel.end; i++ {
		if tleft == 0 {
			tleft = t.stts[ti].count
		}
		delta := t.stts[ti].delta
		if tleft--; tleft == 0 {
			ti++
		}
		cto := -t.ctoShift
		if t.ctts != nil {
			if cleft == 0 {
				cleft = t.ctts[ci].count
			}
			cto += t.ctts[ci].offset
			if cleft--; cleft == 0 {
				ci++
			}
		}
		sync := t.syncs == nil
		if !sync && si < len(t.syncs) && t.syncs[si] == uint32(i+1) {
			sync = true
			si++
		}
		fn(i, delta, cto, sync)
	}
}

// dts is the decode time of sample i (without the empty edit), in ticks.
func (t *track) dts(i int) uint64 {
	var d uint64
	for _, r := range t.stts {
		if i <= int(r.count) {
			return d + uint64(i)*uint64(r.delta)
		}
		d += uint64(r.count) * uint64(r.delta)
		i -= int(r.count)
	}
	return d
}

// duration is where the track ends in the input's time, in ns.
func (t *track) duration() int64 {
	return ticksToNs(t.start+t.dts(len(t.sizes))-t.dts(t.lead), t.timescale)
}

// chunksOf returns the input chunks of t cut down to the samples in sel.
func (t *track) chunksOf(sel span, k kind, input int32) []outChunk {
	var out []outChunk
	first := 0 // index of the chunk's first sample
	for _, c := range t.chunks {
		lo, hi := max(first, sel.first), min(first+int(c.n), sel.end)
		if lo < hi {
			off := c.off
			for _, s := range t.sizes[first:lo] {
				off += int64(s)
			}
			var size int64
			for _, s := range t.sizes[lo:hi] {
				size += int64(s)
			}
			out = append(out, outChunk{kind: k, input: input, off: off, size: size, n: uint32(hi - lo)})
		}
		first += int(c.n)
		if first >= sel.end {
			break
		}
	}
	return out
}

// ticksToNs converts ticks of timescale ts to nanoseconds without overflow.
func ticksToNs(ticks uint64, ts uint32) int64 {
	return int64(ticks/uint64(ts))*int64(time.Second) + int64(ticks%uint64(ts))*int64(time.Second)/int64(ts)
}

// nsToTicks converts nanoseconds (maybe negative) to ticks of ts, rounding to nearest.
func nsToTicks(ns int64, ts uint32) int64 {
	neg := ns < 0
	if neg {
		ns = -ns
	}
	sec, rem := ns/int64(time.Second), ns%int64(time.Second)
	ticks := sec*int64(ts) + (rem*int64(ts)+int64(time.Second)/2)/int64(time.Second)
	if neg {
		return -ticks
	}
	return ticks
}
