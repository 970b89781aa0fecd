package fmp4

import (
	"math"

	"github.com/Eyevinn/mp4ff/mp4"
)

// trackTable is one track's sample table, gathered from the fragments. It keeps what a
// progressive stbl needs and nothing more: 4 bytes per sample for the sizes, the
// decode and composition times run-length coded (one entry per change), and the
// numbers of the sync samples when not all are.
type trackTable struct {
	id        uint32
	trak      *mp4.TrakBox // from the init segment: tkhd, mdhd, hdlr, stsd
	trex      *mp4.TrexBox
	timescale uint32
	video     bool

	sizes   []uint32
	stts    []timeRun
	ctts    []offsetRun
	cto     bool     // a composition offset is not zero
	negCto  bool     // a composition offset is negative (ctts version 1)
	syncs   []uint32 // sync sample numbers, once nonSync
	nonSync bool     // some sample is not a sync sample (stss needed)

	started bool
	start   uint64 // decode time of the first sample (tfdt of the first fragment)
	next    uint64 // decode time after the last sample
}

type timeRun struct{ count, delta uint32 }

type offsetRun struct {
	count  uint32
	offset int32
}

// add appends the samples of a validated run.
func (t *trackTable) add(r run) {
	if r.hasTime {
		switch {
		case !t.started:
			t.start, t.next, t.started = r.time, r.time, true
		case r.time > t.next:
			// A hole between fragments: a progressive file has no way to say
			// "nothing here", so the sample before the hole lasts until it ends.
			t.stretchLast(r.time - t.next)
			t.next = r.time
		}
		// A fragment that starts before the previous one ended overlaps it; its
		// samples simply follow (the overlap is dropped from the timeline).
	}
	t.started = true
	for _, smp := range r.samples {
		t.sizes = append(t.sizes, smp.Size)
		if n := len(t.stts); n > 0 && t.stts[n-1].delta == smp.Dur && t.stts[n-1].count < math.MaxUint32 {
			t.stts[n-1].count++
		} else {
			t.stts = append(t.stts, timeRun{1, smp.Dur})
		}
		if n := len(t.ctts); n > 0 && t.ctts[n-1].offset == smp.CompositionTimeOffset && t.ctts[n-1].count < math.MaxUint32 {
			t.ctts[n-1].count++
		} else {
			t.ctts = append(t.ctts, offsetRun{1, smp.CompositionTimeOffset})
		}
		t.cto = t.cto || smp.CompositionTimeOffset != 0
		t.negCto = t.negCto || smp.CompositionTimeOffset < 0
		// sample_is_non_sync_sample (ISO/IEC 14496-12 8.8.3.1). mp4ff's Sample.IsSync
		// also demands sample_depends_on == 2, which many muxers leave at 0.
		// Sync sample numbers are kept only once a sample is not one: audio tracks,
		// all sync, then cost nothing here.
		nr := uint32(len(t.sizes))
		switch {
		case mp4.DecodeSampleFlags(smp.Flags).SampleIsNonSync:
			if !t.nonSync {
				t.nonSync = true
				for i := uint32(1); i < nr; i++ {
					t.syncs = append(t.syncs, i)
				}
			}
		case t.nonSync:
			t.syncs = append(t.syncs, nr)
		}
		t.next += uint64(smp.Dur)
	}
}

// stretchLast adds d to the duration of the last sample.
func (t *trackTable) stretchLast(d uint64) {
	n := len(t.stts)
	if n == 0 {
		return
	}
	last := &t.stts[n-1]
	delta := uint32(min(uint64(last.delta)+d, math.MaxUint32))
	if last.count == 1 {
		last.delta = delta
		return
	}
	last.count--
	t.stts = append(t.stts, timeRun{1, delta})
}

// mediaDuration is the sum of the sample durations, in the track's timescale.
func (t *trackTable) mediaDuration() uint64 {
	var d uint64
	for _, r := range t.stts {
		d += uint64(r.count) * uint64(r.delta)
	}
	return d
}
