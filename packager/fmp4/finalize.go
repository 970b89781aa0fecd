package fmp4

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/livetape/livetape/packager/mp4box"
)

// copyBufferSize is the buffer media is copied through: large, so that a chunk (a
// second of one track) is one read and one write.
const copyBufferSize = 1 << 20

// max32 is the largest file offset or box size 32 bits hold. Beyond it chunk offsets
// go in a co64 and the mdat takes a 64-bit largesize; a variable so that a test can
// take those paths without writing 4 GiB.
var max32 int64 = math.MaxUint32

// Stats describes a finalized file.
type Stats struct {
	Duration    time.Duration // the longest track, from the start of the recording
	VideoFrames int
	AudioFrames int
	Bytes       int64 // size of the progressive file
}

// Finalize rewrites the fragmented MP4 in src as a progressive MP4 on dst: ftyp, a
// moov with complete sample tables, then one mdat. The index comes first so that a
// player can start before it has the whole file ("fast start").
//
// It reads src twice. The first pass walks the top-level boxes, decodes the moov and
// every moof and seeks over the media, building sample tables whose size grows with the
// number of samples only. The second pass copies the media in file order, each trun's
// run of samples becoming one chunk, so reads stay sequential and memory stays at one
// copy buffer whatever the size of the file. A file with an init segment but no
// fragment returns ErrNoMedia; a file that is cut short or damaged returns an error
// (Recover first).
func Finalize(src io.ReadSeeker, dst io.Writer) (Stats, error) {
	size, err := src.Seek(0, io.SeekEnd)
	if err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: %w", err)
	}
	s := &scanner{r: src, size: size, collect: true}
	if err := s.scan(); err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: %w", err)
	}
	if s.moov == nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: no moov: %w", ErrNotFMP4)
	}
	if s.samples == 0 {
		return Stats{}, ErrNoMedia
	}
	return s.writeProgressive(dst)
}

// FinalizeFile finalizes srcPath into dstPath. The file appears at dstPath complete and
// durable, or not at all: it is written to a temporary file in the same directory,
// fsynced, renamed, and the directory is fsynced.
func FinalizeFile(srcPath, dstPath string) (st Stats, err error) {
	src, err := os.Open(srcPath)
	if err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: %w", err)
	}
	defer src.Close()
	dir := filepath.Dir(dstPath)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dstPath)+".tmp-*")
	if err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp makes the file private (0600); the recording is an ordinary file.
	if err = tmp.Chmod(0o644); err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: %w", err)
	}
	if st, err = Finalize(src, tmp); err != nil {
		return Stats{}, err
	}
	if err = tmp.Sync(); err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: %w", err)
	}
	if err = os.Rename(tmp.Name(), dstPath); err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: some filesystems refuse to sync a directory
		d.Close()
	}
	return st, nil
}

// writeProgressive writes ftyp, moov and mdat for the scanned tables.
func (s *scanner) writeProgressive(dst io.Writer) (Stats, error) {
	var payload int64
	for _, c := range s.chunks {
		payload += c.size
	}
	mdatHdr := int64(8)
	if payload > max32-8 {
		mdatHdr = 16
	}
	ftyp := mp4.NewFtyp("isom", 0x200, []string{"isom", "iso2", "avc1", "mp41"})

	// Chunk offsets depend on the size of the moov, which depends on whether they
	// need 64 bits: build with 32-bit offsets, and again with 64 if they do not fit.
	moov, offsets := s.buildMoov(false)
	dataStart := int64(ftyp.Size()+moov.Size()) + mdatHdr
	if dataStart+payload-s.chunks[len(s.chunks)-1].size > max32 {
		moov, offsets = s.buildMoov(true)
		dataStart = int64(ftyp.Size()+moov.Size()) + mdatHdr
	}
	next := make([]int, len(s.tracks))
	pos := dataStart
	for _, c := range s.chunks {
		offsets[c.track].Set(next[c.track], uint64(pos))
		next[c.track]++
		pos += c.size
	}

	bw := bufio.NewWriterSize(dst, 64<<10)
	if err := ftyp.Encode(bw); err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: write ftyp: %w", err)
	}
	if err := moov.Encode(bw); err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: write moov: %w", err)
	}
	if _, err := bw.Write(mp4box.MdatHeader(payload, mdatHdr == 16)); err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: write mdat: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return Stats{}, fmt.Errorf("fmp4: finalize: write moov: %w", err)
	}
	if err := s.copyMedia(dst); err != nil {
		return Stats{}, err
	}

	st := Stats{Bytes: dataStart + payload}
	for _, t := range s.tracks {
		if t.video {
			st.VideoFrames += len(t.Sizes)
		} else {
			st.AudioFrames += len(t.Sizes)
		}
		end := time.Duration(float64(t.start+t.Duration()) / float64(t.timescale) * float64(time.Second))
		st.Duration = max(st.Duration, end)
	}
	return st, nil
}

// copyMedia copies the chunks' data to dst in order, merging chunks that are
// contiguous in the source (a fragment's runs are) into one read.
func (s *scanner) copyMedia(dst io.Writer) error {
	buf := make([]byte, copyBufferSize)
	for i := 0; i < len(s.chunks); {
		start, end := s.chunks[i].src, s.chunks[i].src+s.chunks[i].size
		for i++; i < len(s.chunks) && s.chunks[i].src == end; i++ {
			end += s.chunks[i].size
		}
		if _, err := s.r.Seek(start, io.SeekStart); err != nil {
			return fmt.Errorf("fmp4: finalize: seek to media at %d: %w", start, err)
		}
		// Through buf even when dst is a file: hiding its ReadFrom keeps io.CopyBuffer
		// from copy_file_range, which measured 25 % slower on ext4 for these
		// chunk-sized ranges (BenchmarkFinalize).
		n, err := io.CopyBuffer(onlyWriter{dst}, io.LimitReader(s.r, end-start), buf)
		if err == nil && n < end-start {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return fmt.Errorf("fmp4: finalize: copy media at %d: %w", start, err)
		}
	}
	return nil
}

// onlyWriter hides every method of an io.Writer but Write.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// buildMoov builds the progressive moov, with chunk offsets still zero; offsets[i]
// receives track i's. Tracks without samples are left out.
func (s *scanner) buildMoov(co64 bool) (*mp4.MoovBox, []mp4box.ChunkOffsets) {
	moov := mp4.NewMoovBox()
	mvhd := *s.moov.Mvhd
	mvhd.Timescale = mp4box.MovieTimescale
	mvhd.Duration = 0
	mvhd.NextTrackID = 1
	moov.AddChild(&mvhd)

	// Samples per chunk of each track, in file order.
	samplesPerChunk := make([][]uint32, len(s.tracks))
	for _, c := range s.chunks {
		samplesPerChunk[c.track] = append(samplesPerChunk[c.track], c.n)
	}
	offsets := make([]mp4box.ChunkOffsets, len(s.tracks))
	for i, t := range s.tracks {
		if len(t.Sizes) == 0 {
			continue
		}
		src := t.trak.Mdia.Minf
		var mediaHeader mp4.Box
		switch {
		case src.Vmhd != nil:
			mediaHeader = src.Vmhd
		case src.Smhd != nil:
			mediaHeader = src.Smhd
		case t.video:
			mediaHeader = mp4.CreateVmhd()
		default:
			mediaHeader = mp4.CreateSmhd()
		}
		dinf := src.Dinf
		if dinf == nil {
			dinf = mp4box.NewDinf()
		}
		trak, trackOffsets, dur := mp4box.Trak{
			Src: t.trak, ID: t.id, Timescale: t.timescale, Start: t.start,
			MediaHeader: mediaHeader, Dinf: dinf, Table: &t.SampleTable,
		}.Build(samplesPerChunk[i], co64)
		offsets[i] = trackOffsets
		mvhd.Duration = max(mvhd.Duration, dur)
		mvhd.NextTrackID = max(mvhd.NextTrackID, t.id+1)
		moov.AddChild(trak)
	}
	mvhd.Version = mp4box.Version(mvhd.Duration)
	return moov, offsets
}
