package fmp4

import (
	"math"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livetape/livetape/packager/mp4box"
)

// trackTable is one track's sample table, gathered from the fragments: what a
// progressive stbl needs and nothing more.
type trackTable struct {
	id        uint32
	trak      *mp4.TrakBox // from the init segment: tkhd, mdhd, hdlr, stsd
	trex      *mp4.TrexBox
	timescale uint32
	video     bool

	mp4box.SampleTable

	started bool
	start   uint64 // decode time of the first sample (tfdt of the first fragment)
	next    uint64 // decode time after the last sample
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
		// sample_is_non_sync_sample (ISO/IEC 14496-12 8.8.3.1). mp4ff's Sample.IsSync
		// also demands sample_depends_on == 2, which many muxers leave at 0.
		sync := !mp4.DecodeSampleFlags(smp.Flags).SampleIsNonSync
		t.Add(smp.Size, smp.Dur, smp.CompositionTimeOffset, sync)
		t.next += uint64(smp.Dur)
	}
}

// stretchLast adds d to the duration of the last sample.
func (t *trackTable) stretchLast(d uint64) {
	n := len(t.Stts)
	if n == 0 {
		return
	}
	t.SetLastDelta(uint32(min(uint64(t.Stts[n-1].Delta)+d, math.MaxUint32)))
}
