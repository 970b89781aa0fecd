package mp4concat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livetape/livetape/packager/mp4box"
)

// Errors callers branch on.
var (
	// ErrConfigMismatch means two inputs' codec configurations differ (SPS, PPS,
	// AudioSpecificConfig, dimensions, codec or timescale): a remux cannot join them,
	// the inputs must be transcoded to a common template first.
	ErrConfigMismatch = errors.New("mp4concat: codec configurations differ")
	// ErrUnsupported means an input is not a progressive MP4 this package reads: not
	// an MP4, fragmented, a codec other than H.264 and AAC, or an edit list that does
	// more than delay a track.
	ErrUnsupported = errors.New("mp4concat: unsupported input")
	// ErrNoMedia means there is nothing to output: no input, or no sample in the
	// clip's window.
	ErrNoMedia = errors.New("mp4concat: no media")
)

// maxMoov bounds the moov read into memory before it is decoded. A two-hour
// recording (the longest record_interval) at 60 fps with 48 kHz audio has about
// 800 000 samples, a moov of some 4 MiB; anything far larger is damage or hostile,
// and refusing it keeps a forged size from allocating gigabytes.
const maxMoov = 64 << 20

// Input is one recording to read.
type Input struct {
	Name  string      // for error messages: a path or file id
	R     io.ReaderAt // the whole file; read by range
	Size  int64       // the file's size in bytes
	Start time.Time   // wall-clock time of the file's time 0; needed by KeepGaps and Clip
}

// kind is a track's role; an output has at most one track of each.
type kind int

const (
	video kind = iota
	audio
	nKinds
)

func (k kind) String() string { return [...]string{"video", "audio"}[k] }

// source is a parsed input: its tracks' sample tables, compact.
type source struct {
	in     Input
	tracks [nKinds]*track // nil when the input has no such track (or no sample in it)
}

// track is one track of an input.
type track struct {
	kind      kind
	timescale uint32
	config    []byte       // what must be equal for a remux: see configKey
	trak      *mp4.TrakBox // tkhd, mdhd, hdlr, minf's header boxes and stsd, for the output
	start     uint64       // empty edit before the first sample, in timescale ticks
	// What an edit list skips at the start of the media (an encoder's delay, as
	// FFmpeg's MP4 muxer writes it): for video, ctoShift is taken off every
	// composition offset; for audio, the first lead samples (AAC priming) are left out.
	ctoShift int32
	lead     int

	sizes  []uint32
	stts   []timeRun
	ctts   []offsetRun // nil when every composition offset is 0
	cttsV1 bool        // signed offsets
	syncs  []uint32    // 1-based numbers of the sync samples; nil when every sample is one
	chunks []srcChunk  // in file order of this track
}

type timeRun struct{ count, delta uint32 }

type offsetRun struct {
	count  uint32
	offset int32
}

// srcChunk is a run of samples contiguous in the input.
type srcChunk struct {
	off int64
	n   uint32
}

// parse reads the moov of in and checks every sample table against the file.
func parse(in Input) (*source, error) {
	src := &source{in: in}
	moov, err := readMoov(in)
	if err != nil {
		return nil, fmt.Errorf("mp4concat: %s: %w", in.Name, err)
	}
	for _, trak := range moov.Traks {
		t, err := parseTrack(trak, moov.Mvhd.Timescale, in.Size)
		if err != nil {
			return nil, fmt.Errorf("mp4concat: %s: track %d: %w", in.Name, trackID(trak), err)
		}
		if t == nil {
			continue
		}
		if src.tracks[t.kind] != nil {
			return nil, fmt.Errorf("mp4concat: %s: two %s tracks: %w", in.Name, t.kind, ErrUnsupported)
		}
		src.tracks[t.kind] = t
	}
	if src.tracks[video] == nil && src.tracks[audio] == nil {
		return nil, fmt.Errorf("mp4concat: %s: %w", in.Name, ErrNoMedia)
	}
	return src, nil
}

func trackID(trak *mp4.TrakBox) uint32 {
	if trak.Tkhd == nil {
		return 0
	}
	return trak.Tkhd.TrackID
}

// readMoov walks the top-level boxes and decodes the moov. A moov with an mvex
// (fragmented) or a file without an mdat is refused.
func readMoov(in Input) (moov *mp4.MoovBox, err error) {
	var moovAt int64 = -1
	var buf []byte // the moov
	var hdr [16]byte
	sawMdat := false
	for off := int64(0); off < in.Size; {
		if in.Size-off < 8 {
			return nil, fmt.Errorf("box header at %d cut short: %w", off, ErrUnsupported)
		}
		if _, err := in.R.ReadAt(hdr[:8], off); err != nil {
			return nil, fmt.Errorf("read box header at %d: %w", off, err)
		}
		typ := string(hdr[4:8])
		if off == 0 && typ != "ftyp" {
			return nil, fmt.Errorf("first box is %q, not ftyp: %w", typ, ErrUnsupported)
		}
		size, hdrLen := int64(binary.BigEndian.Uint32(hdr[:4])), int64(8)
		switch size {
		case 0:
			size = in.Size - off
		case 1:
			if in.Size-off < 16 {
				return nil, fmt.Errorf("box %q at %d cut short: %w", typ, off, ErrUnsupported)
			}
			if _, err := in.R.ReadAt(hdr[8:16], off+8); err != nil {
				return nil, fmt.Errorf("read box header at %d: %w", off, err)
			}
			large := binary.BigEndian.Uint64(hdr[8:16])
			if large > math.MaxInt64 {
				return nil, fmt.Errorf("box %q at %d: size %d: %w", typ, off, large, ErrUnsupported)
			}
			size, hdrLen = int64(large), 16
		}
		if size < hdrLen || size > in.Size-off {
			return nil, fmt.Errorf("box %q at %d: size %d in a file of %d bytes: %w", typ, off, size, in.Size, ErrUnsupported)
		}
		switch typ {
		case "moov":
			if moovAt >= 0 {
				return nil, fmt.Errorf("second moov at %d: %w", off, ErrUnsupported)
			}
			if size > maxMoov {
				return nil, fmt.Errorf("moov of %d bytes (at most %d): %w", size, maxMoov, ErrUnsupported)
			}
			// Read now, after its header, in file order: an input read from storage
			// keeps one request open while its reads follow each other.
			moovAt, buf = off, make([]byte, size)
			copy(buf, hdr[:hdrLen])
			if _, err := in.R.ReadAt(buf[hdrLen:], off+hdrLen); err != nil {
				return nil, fmt.Errorf("read moov: %w", err)
			}
		case "mdat":
			sawMdat = true
		case "moof":
			return nil, fmt.Errorf("moof at %d: fragmented MP4 (finalize it first): %w", off, ErrUnsupported)
		}
		off += size
	}
	if moovAt < 0 || !sawMdat {
		return nil, fmt.Errorf("no moov or no mdat: %w", ErrUnsupported)
	}
	// mp4ff is not written for hostile input: a panic on a damaged box is an error.
	defer func() {
		if r := recover(); r != nil {
			moov, err = nil, fmt.Errorf("decode moov: mp4ff panicked: %v: %w", r, ErrUnsupported)
		}
	}()
	sr := bits.NewFixedSliceReader(buf)
	box, err := mp4.DecodeBoxSR(uint64(moovAt), sr)
	if err == nil {
		err = sr.AccError()
	}
	if err != nil {
		return nil, fmt.Errorf("decode moov: %v: %w", err, ErrUnsupported)
	}
	moov, ok := box.(*mp4.MoovBox)
	if !ok || moov.Mvhd == nil || len(moov.Traks) == 0 {
		return nil, fmt.Errorf("moov without mvhd or track: %w", ErrUnsupported)
	}
	if moov.Mvex != nil {
		return nil, fmt.Errorf("moov with mvex: fragmented MP4: %w", ErrUnsupported)
	}
	return moov, nil
}

// parseTrack checks one trak and gathers its tables. A track without samples is nil.
func parseTrack(trak *mp4.TrakBox, movieScale uint32, fileSize int64) (*track, error) {
	if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Mdhd == nil || trak.Mdia.Hdlr == nil ||
		trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil {
		return nil, fmt.Errorf("trak without tkhd, mdhd, hdlr or stbl: %w", ErrUnsupported)
	}
	stbl := trak.Mdia.Minf.Stbl
	if stbl.Stsz == nil || stbl.Stsz.SampleNumber == 0 {
		return nil, nil
	}
	t := &track{trak: trak, timescale: trak.Mdia.Mdhd.Timescale}
	switch trak.Mdia.Hdlr.HandlerType {
	case "vide":
		t.kind = video
	case "soun":
		t.kind = audio
	default:
		return nil, fmt.Errorf("handler %q: %w", trak.Mdia.Hdlr.HandlerType, ErrUnsupported)
	}
	if t.timescale == 0 {
		return nil, fmt.Errorf("timescale 0: %w", ErrUnsupported)
	}
	var err error
	if t.config, err = configKey(t, stbl.Stsd); err != nil {
		return nil, err
	}
	if stbl.Stts == nil || stbl.Stsc == nil || (stbl.Stco == nil && stbl.Co64 == nil) {
		return nil, fmt.Errorf("stbl without stts, stsc or stco: %w", ErrUnsupported)
	}
	n := stbl.Stsz.SampleNumber
	if stbl.Stsz.SampleUniformSize != 0 {
		// Not what our muxer writes, but cheap: one size for every sample. Every
		// sample's bytes are in the file, which bounds the count.
		if uint64(n)*uint64(stbl.Stsz.SampleUniformSize) > uint64(fileSize) {
			return nil, fmt.Errorf("%d samples of %d bytes in a file of %d bytes: %w",
				n, stbl.Stsz.SampleUniformSize, fileSize, ErrUnsupported)
		}
		t.sizes = make([]uint32, n)
		for i := range t.sizes {
			t.sizes[i] = stbl.Stsz.SampleUniformSize
		}
	} else {
		t.sizes = stbl.Stsz.SampleSize
	}

	// Decode times: every sample has one, with a duration that fits 32 bits.
	var counted uint64
	for i, c := range stbl.Stts.SampleCount {
		if c == 0 {
			continue
		}
		t.stts = append(t.stts, timeRun{c, stbl.Stts.SampleTimeDelta[i]})
		counted += uint64(c)
	}
	if counted != uint64(n) {
		return nil, fmt.Errorf("stts covers %d samples, stsz %d: %w", counted, n, ErrUnsupported)
	}

	if ctts := stbl.Ctts; ctts != nil {
		if len(ctts.EndSampleNr) != len(ctts.SampleOffset)+1 || ctts.EndSampleNr[len(ctts.EndSampleNr)-1] != n {
			return nil, fmt.Errorf("ctts does not cover the %d samples: %w", n, ErrUnsupported)
		}
		t.cttsV1 = ctts.Version == 1
		for i, off := range ctts.SampleOffset {
			if ctts.EndSampleNr[i+1] < ctts.EndSampleNr[i] {
				return nil, fmt.Errorf("ctts goes backwards: %w", ErrUnsupported)
			}
			count := ctts.EndSampleNr[i+1] - ctts.EndSampleNr[i]
			if count > 0 {
				t.ctts = append(t.ctts, offsetRun{count, off})
			}
		}
	}

	if stss := stbl.Stss; stss != nil {
		var prev uint32
		for _, nr := range stss.SampleNumber {
			if nr <= prev || nr > n {
				return nil, fmt.Errorf("stss sample %d after %d of %d: %w", nr, prev, n, ErrUnsupported)
			}
			prev = nr
		}
		t.syncs = stss.SampleNumber
		if len(t.syncs) == int(n) {
			t.syncs = nil // every sample is a sync sample
		} else if len(t.syncs) == 0 {
			return nil, fmt.Errorf("no sync sample: %w", ErrUnsupported)
		}
	}

	var skip uint64
	if t.start, skip, err = editList(trak, movieScale, t.timescale); err != nil {
		return nil, err
	}
	if skip > 0 {
		if t.kind == video {
			if skip > math.MaxInt32/2 {
				return nil, fmt.Errorf("edit list skips %d ticks: %w", skip, ErrUnsupported)
			}
			t.ctoShift = int32(skip)
		} else {
			t.lead = t.samplesEndingBy(skip)
		}
	}
	if err := t.readChunks(stbl, fileSize); err != nil {
		return nil, err
	}
	return t, nil
}

// readChunks turns stsc and stco/co64 into the chunk list and checks that every
// chunk's data lies inside the file.
func (t *track) readChunks(stbl *mp4.StblBox, fileSize int64) error {
	var offsets []uint64
	if stbl.Co64 != nil {
		offsets = stbl.Co64.ChunkOffset
	} else {
		offsets = make([]uint64, len(stbl.Stco.ChunkOffset))
		for i, o := range stbl.Stco.ChunkOffset {
			offsets[i] = uint64(o)
		}
	}
	entries := stbl.Stsc.Entries
	if len(entries) == 0 || entries[0].FirstChunk != 1 {
		return fmt.Errorf("stsc does not start at chunk 1: %w", ErrUnsupported)
	}
	t.chunks = make([]srcChunk, len(offsets))
	sample := 0
	e := 0
	for i, off := range offsets {
		nr := uint32(i + 1)
		for e+1 < len(entries) && entries[e+1].FirstChunk <= nr {
			if entries[e+1].FirstChunk <= entries[e].FirstChunk {
				return fmt.Errorf("stsc entries out of order: %w", ErrUnsupported)
			}
			e++
		}
		per := entries[e].SamplesPerChunk
		if uint64(sample)+uint64(per) > uint64(len(t.sizes)) {
			return fmt.Errorf("chunks hold more than the %d samples: %w", len(t.sizes), ErrUnsupported)
		}
		var size uint64
		for _, s := range t.sizes[sample : sample+int(per)] {
			size += uint64(s)
		}
		if off > uint64(fileSize) || size > uint64(fileSize)-off {
			return fmt.Errorf("chunk %d [%d, +%d) outside the file of %d bytes: %w", nr, off, size, fileSize, ErrUnsupported)
		}
		t.chunks[i] = srcChunk{off: int64(off), n: per}
		sample += int(per)
	}
	if e+1 < len(entries) && entries[e+1].FirstChunk <= uint32(len(offsets)) {
		return fmt.Errorf("stsc entries out of order: %w", ErrUnsupported)
	}
	if sample != len(t.sizes) {
		return fmt.Errorf("chunks hold %d of the %d samples: %w", sample, len(t.sizes), ErrUnsupported)
	}
	return nil
}

// editList reads the edit lists this package understands: empty edits, a delay before
// the track's first sample (what packager/fmp4 writes when a track starts after the
// recording does), then at most one edit playing the media at rate 1 from media time
// skip to its end (what FFmpeg's MP4 muxer writes: the encoder delay of B-frames, the
// AAC priming). delay and skip are in media ticks. Any other edit is refused.
func editList(trak *mp4.TrakBox, movieScale, timescale uint32) (delay, skip uint64, err error) {
	if trak.Edts == nil || len(trak.Edts.Elst) == 0 {
		return 0, 0, nil
	}
	var empty uint64 // in movie ticks
	media := false
	for _, elst := range trak.Edts.Elst {
		for _, e := range elst.Entries {
			switch {
			case e.MediaTime == -1 && !media:
				empty += e.SegmentDuration
			case e.MediaTime >= 0 && !media && e.MediaRateInteger == 1 && e.MediaRateFraction == 0:
				media, skip = true, uint64(e.MediaTime) // to the end: the segment's duration is what is left
			default:
				return 0, 0, fmt.Errorf("edit list entry media_time %d rate %d: %w", e.MediaTime, e.MediaRateInteger, ErrUnsupported)
			}
		}
	}
	if empty == 0 {
		return 0, skip, nil
	}
	if movieScale == 0 {
		return 0, 0, fmt.Errorf("edit list without movie timescale: %w", ErrUnsupported)
	}
	if empty > math.MaxUint32 {
		return 0, 0, fmt.Errorf("empty edit of %d ticks: %w", empty, ErrUnsupported)
	}
	return mp4box.ScaleRound(empty, timescale, movieScale), skip, nil
}

// configKey is what must be equal in two inputs for their samples to share one
// sample description: codec, dimensions or channel layout, SPS and PPS, or the
// AudioSpecificConfig, and the timescale.
func configKey(t *track, stsd *mp4.StsdBox) ([]byte, error) {
	if stsd == nil || len(stsd.Children) != 1 {
		return nil, fmt.Errorf("stsd without exactly one sample entry: %w", ErrUnsupported)
	}
	var key bytes.Buffer
	fmt.Fprintf(&key, "%s %d ", stsd.Children[0].Type(), t.timescale)
	switch e := stsd.Children[0].(type) {
	case *mp4.VisualSampleEntryBox:
		if t.kind != video || e.AvcC == nil {
			return nil, fmt.Errorf("sample entry %q: not H.264: %w", e.Type(), ErrUnsupported)
		}
		fmt.Fprintf(&key, "%dx%d profile %d level %d", e.Width, e.Height, e.AvcC.AVCProfileIndication, e.AvcC.AVCLevelIndication)
		for _, sps := range e.AvcC.SPSnalus {
			fmt.Fprintf(&key, " sps %x", sps)
		}
		for _, pps := range e.AvcC.PPSnalus {
			fmt.Fprintf(&key, " pps %x", pps)
		}
	case *mp4.AudioSampleEntryBox:
		if t.kind != audio || e.Esds == nil || e.Esds.DecConfigDescriptor == nil ||
			e.Esds.DecConfigDescriptor.DecSpecificInfo == nil {
			return nil, fmt.Errorf("sample entry %q: not AAC: %w", e.Type(), ErrUnsupported)
		}
		fmt.Fprintf(&key, "%d ch %d Hz asc %x", e.ChannelCount, e.SampleRate, e.Esds.DecConfigDescriptor.DecSpecificInfo.DecConfig)
	default:
		return nil, fmt.Errorf("sample entry %q: %w", stsd.Children[0].Type(), ErrUnsupported)
	}
	return key.Bytes(), nil
}

// samplesEndingBy counts the leading samples that end at or before ticks, in one pass
// over stts (a hostile skip must not cost samples × runs).
func (t *track) samplesEndingBy(ticks uint64) int {
	n, end := 0, uint64(0)
	for _, r := range t.stts {
		if r.delta == 0 {
			n += int(r.count)
			continue
		}
		whole := min(uint64(r.count), (ticks-end)/uint64(r.delta))
		n += int(whole)
		end += whole * uint64(r.delta)
		if whole < uint64(r.count) {
			break
		}
	}
	return n
}
