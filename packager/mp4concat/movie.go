package mp4concat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// movieTimescale is the mvhd timescale of the output: durations in milliseconds, as
// packager/fmp4 writes them.
const movieTimescale = 1000

// copyBufferSize is the buffer WriteTo copies media through.
const copyBufferSize = 1 << 20

// max32 is the largest offset stco holds; a variable so a test can reach co64
// without writing 4 GiB.
var max32 int64 = math.MaxUint32

// Movie is a fast-start MP4 made of ranges of the inputs. Its header (ftyp, moov and
// the mdat header) is in memory; its media is read from the inputs when the movie is
// read. A Movie is safe for concurrent ReadAt calls when the inputs' ReaderAts are.
type Movie struct {
	head    []byte
	extents []extent // the mdat payload, in order
	size    int64
	inputs  []io.ReaderAt
	opts    Options

	Duration time.Duration // the longest track, from 0
	// Start is the wall-clock time of the movie's time 0, from the inputs' Start
	// (zero when the first input has none).
	Start       time.Time
	VideoFrames int
	AudioFrames int
}

// extent is a range of one input copied to the movie at `at`.
type extent struct {
	at    int64
	input int32
	off   int64
	size  int64
}

// Size is the movie's size in bytes.
func (m *Movie) Size() int64 { return m.size }

// NewReader returns a reader over the whole movie, seekable, for http.ServeContent.
func (m *Movie) NewReader() *io.SectionReader { return io.NewSectionReader(m, 0, m.size) }

// ReadAt reads the movie's bytes at off: the header from memory, the media from the
// inputs' ranges.
func (m *Movie) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("mp4concat: negative offset")
	}
	n := 0
	if off < int64(len(m.head)) {
		n = copy(p, m.head[off:])
	}
	if n == len(p) {
		return n, nil
	}
	pos := off + int64(n)
	// The extent that holds pos: the last one starting at or before it.
	i := sort.Search(len(m.extents), func(i int) bool { return m.extents[i].at > pos }) - 1
	for ; i >= 0 && i < len(m.extents) && n < len(p); i++ {
		e := m.extents[i]
		skip := pos - e.at
		want := min(int64(len(p)-n), e.size-skip)
		got, err := m.inputs[e.input].ReadAt(p[n:n+int(want)], e.off+skip)
		n += got
		pos += int64(got)
		if int64(got) < want {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF // an input shorter than its own index says
			}
			return n, fmt.Errorf("mp4concat: read input %d at %d: %w", e.input, e.off+skip, err)
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteTo writes the whole movie to w, the media through one fixed buffer, calling
// Options.Progress as it goes.
func (m *Movie) WriteTo(w io.Writer) (int64, error) {
	var done int64
	report := func() {
		if m.opts.Progress != nil {
			m.opts.Progress(done, m.size)
		}
	}
	n, err := w.Write(m.head)
	done += int64(n)
	if err != nil {
		return done, fmt.Errorf("mp4concat: write header: %w", err)
	}
	report()
	buf := make([]byte, copyBufferSize)
	for _, e := range m.extents {
		for off := int64(0); off < e.size; {
			chunk := buf[:min(int64(len(buf)), e.size-off)]
			got, err := m.inputs[e.input].ReadAt(chunk, e.off+off)
			if got < len(chunk) {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return done, fmt.Errorf("mp4concat: read input %d at %d: %w", e.input, e.off+off, err)
			}
			n, err := w.Write(chunk)
			done += int64(n)
			if err != nil {
				return done, fmt.Errorf("mp4concat: write media: %w", err)
			}
			off += int64(got)
			report()
		}
	}
	return done, nil
}

// movie lays the gathered tables out as a fast-start MP4.
func (b *builder) movie() (*Movie, error) {
	if b.tracks[video] == nil && b.tracks[audio] == nil {
		return nil, ErrNoMedia
	}
	var payload int64
	for _, c := range b.chunks {
		payload += c.size
	}
	mdatHdr := int64(8)
	if payload > max32-8 {
		mdatHdr = 16
	}
	ftyp := mp4.NewFtyp("isom", 0x200, []string{"isom", "iso2", "avc1", "mp41"})

	// Chunk offsets depend on the moov's size, which depends on whether they need 64
	// bits: build with 32-bit offsets, and again with 64 if they do not fit.
	moov, offsets := b.buildMoov(false)
	dataStart := int64(ftyp.Size()+moov.Size()) + mdatHdr
	if dataStart+payload > max32 {
		moov, offsets = b.buildMoov(true)
		dataStart = int64(ftyp.Size()+moov.Size()) + mdatHdr
	}
	m := &Movie{inputs: b.inputs, opts: b.opts, size: dataStart + payload}
	var next [nKinds]int
	pos := dataStart
	for _, c := range b.chunks {
		offsets[c.kind].set(next[c.kind], uint64(pos))
		next[c.kind]++
		// Chunks that follow each other in the same input are one read.
		if n := len(m.extents); n > 0 && m.extents[n-1].input == c.input && m.extents[n-1].off+m.extents[n-1].size == c.off {
			m.extents[n-1].size += c.size
		} else {
			m.extents = append(m.extents, extent{at: pos, input: c.input, off: c.off, size: c.size})
		}
		pos += c.size
	}

	var head bytes.Buffer
	head.Grow(int(dataStart))
	if err := ftyp.Encode(&head); err != nil {
		return nil, fmt.Errorf("mp4concat: encode ftyp: %w", err)
	}
	if err := moov.Encode(&head); err != nil {
		return nil, fmt.Errorf("mp4concat: encode moov: %w", err)
	}
	var hdr [16]byte
	if mdatHdr == 16 {
		binary.BigEndian.PutUint32(hdr[:], 1)
		copy(hdr[4:], "mdat")
		binary.BigEndian.PutUint64(hdr[8:], uint64(payload+16))
	} else {
		binary.BigEndian.PutUint32(hdr[:], uint32(payload+8))
		copy(hdr[4:], "mdat")
	}
	head.Write(hdr[:mdatHdr])
	m.head = head.Bytes()

	for _, o := range b.tracks {
		if o == nil {
			continue
		}
		m.Duration = max(m.Duration, time.Duration(ticksToNs(o.end, o.timescale)))
		if o.tmpl.kind == video {
			m.VideoFrames = len(o.sizes)
		} else {
			m.AudioFrames = len(o.sizes)
		}
	}
	return m, nil
}

// chunkOffsets is the stco or co64 of one track, filled once the moov size is known.
type chunkOffsets struct {
	stco *mp4.StcoBox
	co64 *mp4.Co64Box
}

func (o chunkOffsets) set(i int, off uint64) {
	if o.co64 != nil {
		o.co64.ChunkOffset[i] = off
	} else if o.stco != nil {
		o.stco.ChunkOffset[i] = uint32(off)
	}
}

// buildMoov builds the moov with chunk offsets still zero; offsets[k] receives track
// k's. Video is track 1, audio track 2.
func (b *builder) buildMoov(co64 bool) (*mp4.MoovBox, [nKinds]chunkOffsets) {
	var offsets [nKinds]chunkOffsets
	moov := mp4.NewMoovBox()
	mvhd := mp4.CreateMvhd()
	mvhd.Timescale = movieTimescale
	mvhd.NextTrackID = 1
	moov.AddChild(mvhd)

	var chunkCounts [nKinds]int
	for _, c := range b.chunks {
		chunkCounts[c.kind]++
	}
	for k, o := range b.tracks {
		if o == nil {
			continue
		}
		id := uint32(k + 1)
		mediaDur := o.end - o.start
		startMovie := scaleRound(o.start, movieTimescale, o.timescale)
		durMovie := scaleRound(mediaDur, movieTimescale, o.timescale)
		mvhd.Duration = max(mvhd.Duration, startMovie+durMovie)
		mvhd.NextTrackID = max(mvhd.NextTrackID, id+1)

		src := o.tmpl.trak
		trak := mp4.NewTrakBox()
		tkhd := *src.Tkhd
		tkhd.TrackID = id
		tkhd.Duration = startMovie + durMovie
		tkhd.Version = version(tkhd.Duration)
		tkhd.Flags = 0x3 // track_enabled | track_in_movie
		trak.AddChild(&tkhd)
		if o.start > 0 {
			// A track that starts after the movie waits behind an empty edit
			// (ISO/IEC 14496-12 8.6.6), as packager/fmp4 writes it.
			elst := &mp4.ElstBox{Entries: []mp4.ElstEntry{
				{SegmentDuration: startMovie, MediaTime: -1, MediaRateInteger: 1},
				{SegmentDuration: durMovie, MediaTime: 0, MediaRateInteger: 1},
			}}
			elst.Version = version(startMovie + durMovie)
			edts := &mp4.EdtsBox{}
			edts.AddChild(elst)
			trak.AddChild(edts)
		}

		mdia := mp4.NewMdiaBox()
		mdhd := *src.Mdia.Mdhd
		mdhd.Duration = mediaDur
		mdhd.Version = version(mediaDur)
		mdia.AddChild(&mdhd)
		mdia.AddChild(src.Mdia.Hdlr)
		minf := mp4.NewMinfBox()
		switch {
		case o.tmpl.kind == video:
			minf.AddChild(mp4.CreateVmhd())
		default:
			minf.AddChild(mp4.CreateSmhd())
		}
		dinf := &mp4.DinfBox{}
		dinf.AddChild(mp4.CreateDref())
		minf.AddChild(dinf)
		minf.AddChild(o.stbl(chunkCounts[k], b.chunks, kind(k), co64, &offsets[k]))
		mdia.AddChild(minf)
		trak.AddChild(mdia)
		moov.AddChild(trak)
	}
	mvhd.Version = version(mvhd.Duration)
	return moov, offsets
}

// stbl builds the sample table box (ISO/IEC 14496-12 8.5).
func (o *outTrack) stbl(nChunks int, chunks []outChunk, k kind, co64 bool, offsets *chunkOffsets) *mp4.StblBox {
	stbl := mp4.NewStblBox()
	stbl.AddChild(o.tmpl.trak.Mdia.Minf.Stbl.Stsd)

	stts := &mp4.SttsBox{
		SampleCount:     make([]uint32, len(o.stts)),
		SampleTimeDelta: make([]uint32, len(o.stts)),
	}
	for i, r := range o.stts {
		stts.SampleCount[i], stts.SampleTimeDelta[i] = r.count, r.delta
	}
	stbl.AddChild(stts)

	if o.cto {
		ctts := &mp4.CttsBox{
			EndSampleNr:  make([]uint32, 1, len(o.ctts)+1),
			SampleOffset: make([]int32, len(o.ctts)),
		}
		if o.negCto {
			ctts.Version = 1 // signed offsets
		}
		var end uint32
		for i, r := range o.ctts {
			end += r.count
			ctts.EndSampleNr = append(ctts.EndSampleNr, end)
			ctts.SampleOffset[i] = r.offset
		}
		stbl.AddChild(ctts)
	}

	if o.nonSync {
		stbl.AddChild(&mp4.StssBox{SampleNumber: o.syncs})
	}

	// One stsc entry per change in the number of samples per chunk.
	stsc := &mp4.StscBox{}
	var chunkNr, lastN uint32
	for _, c := range chunks {
		if c.kind != k {
			continue
		}
		chunkNr++
		if chunkNr == 1 || c.n != lastN {
			stsc.AddEntry(chunkNr, c.n, 1)
			lastN = c.n
		}
	}
	stbl.AddChild(stsc)

	stbl.AddChild(&mp4.StszBox{SampleNumber: uint32(len(o.sizes)), SampleSize: o.sizes})

	if co64 {
		offsets.co64 = &mp4.Co64Box{ChunkOffset: make([]uint64, nChunks)}
		stbl.AddChild(offsets.co64)
	} else {
		offsets.stco = &mp4.StcoBox{ChunkOffset: make([]uint32, nChunks)}
		stbl.AddChild(offsets.stco)
	}
	return stbl
}

// version is the full-box version whose fields hold d: 0 for 32 bits, 1 for 64.
func version(d uint64) byte {
	if d > math.MaxUint32 {
		return 1
	}
	return 0
}
