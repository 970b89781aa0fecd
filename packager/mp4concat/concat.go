package mp4concat

import (
	"fmt"
	"io"
	"time"
)

// Concat joins whole recordings, in the order given, into one movie. With KeepGaps
// every input needs its Start. Inputs whose codec configurations differ are refused
// with ErrConfigMismatch before anything is written.
func Concat(inputs []Input, opts Options) (*Movie, error) {
	if len(inputs) == 0 {
		return nil, ErrNoMedia
	}
	b := &builder{opts: opts}
	var wall0 time.Time
	for i, in := range inputs {
		if opts.Gaps == KeepGaps && in.Start.IsZero() {
			return nil, fmt.Errorf("mp4concat: %s: keeping gaps needs the start time of every input", in.Name)
		}
		src, err := parse(in)
		if err != nil {
			return nil, err
		}
		p := piece{src: src, input: int32(len(b.inputs)), at: b.end}
		if i == 0 {
			wall0, p.at = in.Start, 0
		} else if opts.Gaps == KeepGaps {
			p.at = max(b.end, in.Start.Sub(wall0).Nanoseconds())
		}
		for k, t := range src.tracks {
			if t != nil {
				p.sel[k] = span{t.lead, len(t.sizes)}
			}
		}
		b.inputs = append(b.inputs, in.R)
		if err := b.add(p); err != nil {
			return nil, err
		}
	}
	return b.movieFrom(wall0)
}

// Clip cuts the window [start, end) of wall-clock time out of a run of recordings
// given in order, each with its Start. Inputs outside the window are skipped (they
// are not even parsed).
//
// The clip starts at the video keyframe at or before start, so that it plays from
// its first frame, and ends exactly at end: it holds every video frame decoded
// before end (a cut in decode order keeps every reference a kept frame needs), and
// the audio frames that start in [the first keyframe, end). Its timestamps start at
// 0. Between inputs, opts.Gaps applies as in Concat. A window that holds no sample
// returns ErrNoMedia.
//
// Nothing is read but the inputs' moovs: the media is read by range when the movie is.
func Clip(inputs []Input, start, end time.Time, opts Options) (*Movie, error) {
	if !end.After(start) {
		return nil, fmt.Errorf("mp4concat: clip end %s not after start %s: %w", end, start, ErrNoMedia)
	}
	b := &builder{opts: opts}
	var wall0 time.Time
	for _, in := range inputs {
		if in.Start.IsZero() {
			return nil, fmt.Errorf("mp4concat: %s: a clip needs the start time of every input", in.Name)
		}
		if !in.Start.Before(end) {
			continue
		}
		src, err := parse(in)
		if err != nil {
			return nil, err
		}
		from, to := start.Sub(in.Start).Nanoseconds(), end.Sub(in.Start).Nanoseconds()
		p := piece{src: src, input: int32(len(b.inputs)), at: b.end}
		first := len(b.inputs) == 0
		origin, ok := src.cut(&p, from, to, first)
		if !ok {
			continue
		}
		if first {
			p.origin, p.at = origin, 0
			wall0 = in.Start.Add(time.Duration(origin))
		} else {
			p.origin = origin
			if opts.Gaps == KeepGaps {
				p.at = max(b.end, in.Start.Add(time.Duration(origin)).Sub(wall0).Nanoseconds())
			}
		}
		b.inputs = append(b.inputs, in.R)
		if err := b.add(p); err != nil {
			return nil, err
		}
	}
	return b.movieFrom(wall0)
}

// movieFrom is b.movie with its time 0 at wall0.
func (b *builder) movieFrom(wall0 time.Time) (*Movie, error) {
	m, err := b.movie()
	if m != nil {
		m.Start = wall0
	}
	return m, err
}

// cut selects the samples of src in [from, to) (input time, ns) into p.sel. In the
// first input of a clip the video starts at the keyframe at or before from (audio
// alone: at the frame playing at from) and origin is that sample's time; later
// inputs start at their first keyframe. It reports whether anything was selected.
func (src *source) cut(p *piece, from, to int64, first bool) (origin int64, ok bool) {
	lead := audio
	if src.tracks[video] != nil {
		lead = video
	}
	t := src.tracks[lead]
	var end int64
	for _, tr := range src.tracks {
		if tr != nil {
			end = max(end, tr.duration())
		}
	}
	if from >= end || to <= 0 {
		return 0, false
	}
	if first {
		// The last sync sample at or before from, or the first one.
		startAt := -1
		t.walk(func(i int, at int64, sync bool) bool {
			if sync && (startAt < 0 || at <= from) {
				startAt, origin = i, at
			}
			return at <= from || startAt < 0
		})
		if startAt < 0 {
			return 0, false
		}
	} else {
		t.walk(func(i int, at int64, sync bool) bool {
			origin = at
			return !sync
		})
	}
	for k, tr := range src.tracks {
		if tr == nil {
			continue
		}
		p.sel[k] = span{tr.firstAt(origin), tr.firstAt(to)}
		ok = ok || !p.sel[k].empty()
	}
	if p.sel[lead].empty() {
		return 0, false
	}
	return origin, ok
}

// walk calls fn for the samples in order from the first one played (t.lead) with
// their input time (ns, empty edit included) and whether they are sync samples, until
// fn returns false.
func (t *track) walk(fn func(i int, at int64, sync bool) bool) {
	i, d := 0, t.start
	base := t.dts(t.lead)
	si := 0
	for _, r := range t.stts {
		for range r.count {
			sync := t.syncs == nil
			if !sync && si < len(t.syncs) && t.syncs[si] == uint32(i+1) {
				sync = true
				si++
			}
			if i >= t.lead && !fn(i, ticksToNs(d-base, t.timescale), sync) {
				return
			}
			d += uint64(r.delta)
			i++
		}
	}
}

// firstAt is the index of the first sample at or after ns (len(sizes) when none).
func (t *track) firstAt(ns int64) int {
	found := len(t.sizes)
	t.walk(func(i int, at int64, _ bool) bool {
		if at >= ns {
			found = i
			return false
		}
		return true
	})
	return found
}

var _ io.ReaderAt = (*Movie)(nil)
