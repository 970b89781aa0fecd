// Package mp4box builds the boxes of a progressive MP4 that packager/fmp4 (finalizing
// a recording) and packager/mp4concat (stitching and clipping recordings) both write:
// the sample table from run-length coded tables, the chunk offsets filled in once the
// moov's size is known, the empty edit of a late track and the mdat header.
package mp4box

import (
	"encoding/binary"
	"math"

	"github.com/Eyevinn/mp4ff/mp4"
)

// SampleTable is one track's samples in the compact form a progressive stbl needs: 4
// bytes per sample for the sizes, the decode and composition times run-length coded
// (one entry per change), and the numbers of the sync samples when not all are.
type SampleTable struct {
	Sizes   []uint32
	Stts    []TimeRun
	Ctts    []OffsetRun
	Cto     bool     // a composition offset is not zero (ctts needed)
	NegCto  bool     // a composition offset is negative (ctts version 1)
	Syncs   []uint32 // 1-based sync sample numbers, once NonSync
	NonSync bool     // some sample is not a sync sample (stss needed)
}

// TimeRun is Count samples lasting Delta ticks each.
type TimeRun struct{ Count, Delta uint32 }

// OffsetRun is Count samples with composition offset Offset.
type OffsetRun struct {
	Count  uint32
	Offset int32
}

// Add appends a sample of size bytes lasting dur ticks, with composition offset cto.
func (t *SampleTable) Add(size, dur uint32, cto int32, sync bool) {
	t.Sizes = append(t.Sizes, size)
	if n := len(t.Stts); n > 0 && t.Stts[n-1].Delta == dur && t.Stts[n-1].Count < math.MaxUint32 {
		t.Stts[n-1].Count++
	} else {
		t.Stts = append(t.Stts, TimeRun{1, dur})
	}
	if n := len(t.Ctts); n > 0 && t.Ctts[n-1].Offset == cto && t.Ctts[n-1].Count < math.MaxUint32 {
		t.Ctts[n-1].Count++
	} else {
		t.Ctts = append(t.Ctts, OffsetRun{1, cto})
	}
	t.Cto = t.Cto || cto != 0
	t.NegCto = t.NegCto || cto < 0
	// Sync sample numbers are kept only once a sample is not one: audio tracks, all
	// sync, then cost nothing here.
	nr := uint32(len(t.Sizes))
	switch {
	case !sync:
		if !t.NonSync {
			t.NonSync = true
			for i := uint32(1); i < nr; i++ {
				t.Syncs = append(t.Syncs, i)
			}
		}
	case t.NonSync:
		t.Syncs = append(t.Syncs, nr)
	}
}

// SetLastDelta makes the last sample last delta ticks, splitting it off its run.
// The table must not be empty.
func (t *SampleTable) SetLastDelta(delta uint32) {
	last := &t.Stts[len(t.Stts)-1]
	if last.Count == 1 {
		last.Delta = delta
		return
	}
	last.Count--
	t.Stts = append(t.Stts, TimeRun{1, delta})
}

// Duration is the sum of the sample durations, in the track's timescale.
func (t *SampleTable) Duration() uint64 {
	var d uint64
	for _, r := range t.Stts {
		d += uint64(r.Count) * uint64(r.Delta)
	}
	return d
}

// Stbl builds the sample table box (ISO/IEC 14496-12 8.5) with the sample
// descriptions stsd and chunks of samplesPerChunk samples each, in order. The chunk
// offsets are zero until set through the ChunkOffsets returned, 64-bit when co64.
func (t *SampleTable) Stbl(stsd *mp4.StsdBox, samplesPerChunk []uint32, co64 bool) (*mp4.StblBox, ChunkOffsets) {
	stbl := mp4.NewStblBox()
	stbl.AddChild(stsd)

	stts := &mp4.SttsBox{
		SampleCount:     make([]uint32, len(t.Stts)),
		SampleTimeDelta: make([]uint32, len(t.Stts)),
	}
	for i, r := range t.Stts {
		stts.SampleCount[i], stts.SampleTimeDelta[i] = r.Count, r.Delta
	}
	stbl.AddChild(stts)

	if t.Cto {
		ctts := &mp4.CttsBox{
			EndSampleNr:  make([]uint32, 1, len(t.Ctts)+1),
			SampleOffset: make([]int32, len(t.Ctts)),
		}
		if t.NegCto {
			ctts.Version = 1 // signed offsets
		}
		var end uint32
		for i, r := range t.Ctts {
			end += r.Count
			ctts.EndSampleNr = append(ctts.EndSampleNr, end)
			ctts.SampleOffset[i] = r.Offset
		}
		stbl.AddChild(ctts)
	}

	if t.NonSync {
		stbl.AddChild(&mp4.StssBox{SampleNumber: t.Syncs})
	}

	// One stsc entry per change in the number of samples per chunk.
	stsc := &mp4.StscBox{}
	for i, n := range samplesPerChunk {
		if i == 0 || n != samplesPerChunk[i-1] {
			stsc.AddEntry(uint32(i+1), n, 1)
		}
	}
	stbl.AddChild(stsc)

	stbl.AddChild(&mp4.StszBox{SampleNumber: uint32(len(t.Sizes)), SampleSize: t.Sizes})

	var offsets ChunkOffsets
	if co64 {
		offsets.co64 = &mp4.Co64Box{ChunkOffset: make([]uint64, len(samplesPerChunk))}
		stbl.AddChild(offsets.co64)
	} else {
		offsets.stco = &mp4.StcoBox{ChunkOffset: make([]uint32, len(samplesPerChunk))}
		stbl.AddChild(offsets.stco)
	}
	return stbl, offsets
}

// ChunkOffsets is the stco or co64 of one track, filled once the moov's size is known.
// The zero value (a track left out) ignores Set.
type ChunkOffsets struct {
	stco *mp4.StcoBox
	co64 *mp4.Co64Box
}

// Set sets the offset of chunk i (0-based).
func (o ChunkOffsets) Set(i int, off uint64) {
	if o.co64 != nil {
		o.co64.ChunkOffset[i] = off
	} else if o.stco != nil {
		o.stco.ChunkOffset[i] = uint32(off)
	}
}

// MovieTimescale is the mvhd timescale of the progressive files livetape writes:
// durations in milliseconds.
const MovieTimescale = 1000

// Trak is what a progressive trak is made of.
type Trak struct {
	Src         *mp4.TrakBox // tkhd, mdhd, hdlr and stsd, copied
	ID          uint32
	Timescale   uint32
	Start       uint64  // ticks before the first sample: an empty edit when not 0
	MediaHeader mp4.Box // vmhd or smhd
	Dinf        *mp4.DinfBox
	Table       *SampleTable
}

// Build builds the trak with chunks of samplesPerChunk samples each; the chunk offsets
// are set through the ChunkOffsets returned. movieDur is the track's duration in
// MovieTimescale, its start included.
func (t Trak) Build(samplesPerChunk []uint32, co64 bool) (trak *mp4.TrakBox, offsets ChunkOffsets, movieDur uint64) {
	mediaDur := t.Table.Duration()
	startMovie := ScaleRound(t.Start, MovieTimescale, t.Timescale)
	durMovie := ScaleRound(mediaDur, MovieTimescale, t.Timescale)

	trak = mp4.NewTrakBox()
	tkhd := *t.Src.Tkhd
	tkhd.TrackID = t.ID
	tkhd.Duration = startMovie + durMovie
	tkhd.Version = Version(tkhd.Duration)
	tkhd.Flags = 0x3 // track_enabled | track_in_movie
	trak.AddChild(&tkhd)
	if t.Start > 0 {
		// A track that starts after the movie does (audio primed later than the
		// first video frame, say) waits behind an empty edit.
		trak.AddChild(EmptyEdit(startMovie, durMovie))
	}

	mdia := mp4.NewMdiaBox()
	mdhd := *t.Src.Mdia.Mdhd
	mdhd.Duration = mediaDur
	mdhd.Version = Version(mediaDur)
	mdia.AddChild(&mdhd)
	mdia.AddChild(t.Src.Mdia.Hdlr)
	minf := mp4.NewMinfBox()
	minf.AddChild(t.MediaHeader)
	minf.AddChild(t.Dinf)
	stbl, offsets := t.Table.Stbl(t.Src.Mdia.Minf.Stbl.Stsd, samplesPerChunk, co64)
	minf.AddChild(stbl)
	mdia.AddChild(minf)
	trak.AddChild(mdia)
	return trak, offsets, startMovie + durMovie
}

// NewDinf is a data information box saying the media is in this file.
func NewDinf() *mp4.DinfBox {
	dinf := &mp4.DinfBox{}
	dinf.AddChild(mp4.CreateDref())
	return dinf
}

// EmptyEdit is the edts of a track that starts start ticks of the movie timescale
// after the movie and lasts dur: an empty edit, then the media (ISO/IEC 14496-12
// 8.6.6), which keeps the track in sync with the others.
func EmptyEdit(start, dur uint64) *mp4.EdtsBox {
	elst := &mp4.ElstBox{Entries: []mp4.ElstEntry{
		{SegmentDuration: start, MediaTime: -1, MediaRateInteger: 1},
		{SegmentDuration: dur, MediaTime: 0, MediaRateInteger: 1},
	}}
	elst.Version = Version(start + dur)
	edts := &mp4.EdtsBox{}
	edts.AddChild(elst)
	edts.Elst = append(edts.Elst, elst)
	return edts
}

// MdatHeader is the header of an mdat of payload bytes: 16 bytes with a 64-bit
// largesize when large, else 8.
func MdatHeader(payload int64, large bool) []byte {
	if large {
		hdr := make([]byte, 16)
		binary.BigEndian.PutUint32(hdr, 1)
		copy(hdr[4:], "mdat")
		binary.BigEndian.PutUint64(hdr[8:], uint64(payload+16))
		return hdr
	}
	hdr := make([]byte, 8)
	binary.BigEndian.PutUint32(hdr, uint32(payload+8))
	copy(hdr[4:], "mdat")
	return hdr
}

// Version is the full-box version whose fields hold d: 0 for 32 bits, 1 for 64.
func Version(d uint64) byte {
	if d > math.MaxUint32 {
		return 1
	}
	return 0
}

// ScaleRound converts v from timescale from to timescale to, rounding to nearest.
func ScaleRound(v uint64, to, from uint32) uint64 {
	if v > math.MaxUint64/uint64(to) {
		return v / uint64(from) * uint64(to)
	}
	return (v*uint64(to) + uint64(from)/2) / uint64(from)
}
