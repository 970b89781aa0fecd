package mp4concat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livetape/livetape/packager/mp4box"
)

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
		offsets[c.kind].Set(next[c.kind], uint64(pos))
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
	head.Write(mp4box.MdatHeader(payload, mdatHdr == 16))
	m.head = head.Bytes()

	for _, o := range b.tracks {
		if o == nil {
			continue
		}
		m.Duration = max(m.Duration, time.Duration(ticksToNs(o.end, o.timescale)))
		if o.tmpl.kind == video {
			m.VideoFrames = len(o.Sizes)
		} else {
			m.AudioFrames = len(o.Sizes)
		}
	}
	return m, nil
}

// buildMoov builds the moov with chunk offsets still zero; offsets[k] receives track
// k's. Video is track 1, audio track 2.
func (b *builder) buildMoov(co64 bool) (*mp4.MoovBox, [nKinds]mp4box.ChunkOffsets) {
	var offsets [nKinds]mp4box.ChunkOffsets
	moov := mp4.NewMoovBox()
	mvhd := mp4.CreateMvhd()
	mvhd.Timescale = mp4box.MovieTimescale
	mvhd.NextTrackID = 1
	moov.AddChild(mvhd)

	var samplesPerChunk [nKinds][]uint32
	for _, c := range b.chunks {
		samplesPerChunk[c.kind] = append(samplesPerChunk[c.kind], c.n)
	}
	for k, o := range b.tracks {
		if o == nil {
			continue
		}
		id := uint32(k + 1)
		var mediaHeader mp4.Box = mp4.CreateSmhd()
		if o.tmpl.kind == video {
			mediaHeader = mp4.CreateVmhd()
		}
		trak, trackOffsets, dur := mp4box.Trak{
			Src: o.tmpl.trak, ID: id, Timescale: o.timescale, Start: o.start,
			MediaHeader: mediaHeader, Dinf: mp4box.NewDinf(), Table: &o.SampleTable,
		}.Build(samplesPerChunk[k], co64)
		offsets[k] = trackOffsets
		mvhd.Duration = max(mvhd.Duration, dur)
		mvhd.NextTrackID = max(mvhd.NextTrackID, id+1)
		moov.AddChild(trak)
	}
	mvhd.Version = mp4box.Version(mvhd.Duration)
	return moov, offsets
}
