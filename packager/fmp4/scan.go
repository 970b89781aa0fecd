package fmp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"
)

// Errors callers branch on.
var (
	// ErrNoMedia means the file holds an init segment but no complete fragment: it is
	// valid and empty, and the caller should discard it.
	ErrNoMedia = errors.New("fmp4: no media fragment")
	// ErrNotFMP4 means the file does not start like a fragmented MP4 (ftyp then moov
	// with mvex): it is not one of ours, and Recover leaves it untouched.
	ErrNotFMP4 = errors.New("fmp4: not a fragmented MP4")
)

// Reasons a scan stops early. Recover treats both as the end of the usable file;
// Finalize reports them.
var (
	errCutShort = errors.New("cut short")
	errGarbage  = errors.New("not a box")
)

// ioError marks a failure to read the file, as opposed to a file that reads fine but
// is damaged: Recover must not truncate a file it could not read.
type ioError struct{ error }

func (e ioError) Unwrap() error { return e.error }

// maxIndexBox bounds the moov and moof boxes read into memory. Ours are a few KiB (a
// one-second fragment of 2.5 Mbit/s has ~70 samples), so anything larger is damage,
// and refusing it keeps a corrupt size field from allocating gigabytes.
const maxIndexBox = 64 << 20

// boxHeader locates one top-level box.
type boxHeader struct {
	typ    string
	start  int64
	size   int64 // whole box, header included
	hdrLen int64
}

func (h boxHeader) end() int64          { return h.start + h.size }
func (h boxHeader) payloadStart() int64 { return h.start + h.hdrLen }

// readHeader reads the header of the box at off in a file of fileSize bytes. A header
// or box that runs past the end of the file is errCutShort; a type that is not four
// printable characters, or a size smaller than its header, is errGarbage. Once the
// first 8 bytes are read, the returned header carries the type even with an error.
func readHeader(r io.ReadSeeker, off, fileSize int64) (boxHeader, error) {
	var b [16]byte
	if fileSize-off < 8 {
		return boxHeader{}, fmt.Errorf("box header at %d: %w", off, errCutShort)
	}
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		return boxHeader{}, ioError{fmt.Errorf("seek to box at %d: %w", off, err)}
	}
	if _, err := io.ReadFull(r, b[:8]); err != nil {
		return boxHeader{}, ioError{fmt.Errorf("box header at %d: %w", off, err)}
	}
	h := boxHeader{typ: string(b[4:8]), start: off, size: int64(binary.BigEndian.Uint32(b[:4])), hdrLen: 8}
	for _, c := range b[4:8] {
		if c < 0x20 || c > 0x7e {
			return h, fmt.Errorf("box at %d: type %q: %w", off, h.typ, errGarbage)
		}
	}
	switch h.size {
	case 0: // the box extends to the end of the file (ISO/IEC 14496-12 4.2)
		h.size = fileSize - off
	case 1: // 64-bit largesize follows the type
		if fileSize-off < 16 {
			return h, fmt.Errorf("box %q at %d: large size: %w", h.typ, off, errCutShort)
		}
		if _, err := io.ReadFull(r, b[8:16]); err != nil {
			return h, ioError{fmt.Errorf("box %q at %d: %w", h.typ, off, err)}
		}
		large := binary.BigEndian.Uint64(b[8:16])
		if large > math.MaxInt64 {
			return h, fmt.Errorf("box %q at %d: size %d: %w", h.typ, off, large, errGarbage)
		}
		h.size, h.hdrLen = int64(large), 16
	}
	if h.size < h.hdrLen {
		return h, fmt.Errorf("box %q at %d: size %d: %w", h.typ, off, h.size, errGarbage)
	}
	if h.size > fileSize-off {
		return h, fmt.Errorf("box %q at %d: %d bytes declared, %d in the file: %w",
			h.typ, off, h.size, fileSize-off, errCutShort)
	}
	return h, nil
}

// scanner walks the top-level boxes of a fragmented MP4. It decodes ftyp's successor
// moov and every moof, seeks over mdat payloads, and (when collect is set) gathers the
// sample tables a progressive moov needs.
type scanner struct {
	r       io.ReadSeeker
	size    int64
	collect bool

	moov      *mp4.MoovBox
	tracks    []*trackTable
	chunks    []chunk // every trun's data, in file order
	samples   int64
	fragments int
	end       int64 // end of the last complete init box or moof+mdat pair

	buf  []byte // moof bytes, reused
	runs []run  // runs of the moof being added, reused
}

// chunk is the data of one trun: samples of one track, contiguous in the source. It
// becomes one chunk of the progressive file.
type chunk struct {
	src   int64 // offset in the source
	size  int64
	track int // index in scanner.tracks
	n     uint32
}

// run is a trun being validated before it is added to the tables.
type run struct {
	t       *trackTable
	track   int
	off     int64
	size    int64
	samples []mp4.Sample
	time    uint64 // tfdt, for the first run of a traf
	hasTime bool
}

// scan reads boxes until the end of the file or the first problem, which it returns.
// s.end is valid either way.
func (s *scanner) scan() error {
	var off int64
	for off < s.size {
		h, err := readHeader(s.r, off, s.size)
		if off == 0 && h.typ != "" && h.typ != "ftyp" {
			// Checked before err: a foreign file's first "size" means nothing.
			return fmt.Errorf("first box is %q: %w", h.typ, ErrNotFMP4)
		}
		if err != nil {
			return err
		}
		switch h.typ {
		case "moov":
			if s.moov != nil {
				return fmt.Errorf("second moov at %d", off)
			}
			box, err := s.decode(h, nil)
			if err != nil {
				return err
			}
			if err := s.setInit(box.(*mp4.MoovBox)); err != nil {
				return err
			}
		case "moof":
			if s.moov == nil {
				return fmt.Errorf("moof at %d before the moov", off)
			}
			mdat, err := readHeader(s.r, h.end(), s.size)
			if err != nil {
				return fmt.Errorf("moof at %d: %w", off, err)
			}
			if mdat.typ != "mdat" {
				return fmt.Errorf("moof at %d is followed by %q, not mdat", off, mdat.typ)
			}
			if h.size > maxIndexBox {
				return fmt.Errorf("moof at %d: %d bytes: %w", off, h.size, errGarbage)
			}
			if int64(cap(s.buf)) < h.size {
				s.buf = make([]byte, h.size)
			}
			box, err := s.decode(h, s.buf[:h.size])
			if err != nil {
				return err
			}
			moof, ok := box.(*mp4.MoofBox)
			if !ok {
				return fmt.Errorf("moof at %d: decoded as %T", off, box)
			}
			if err := s.addFragment(moof, h, mdat); err != nil {
				return fmt.Errorf("fragment at %d: %w", off, err)
			}
			off = mdat.end()
			s.end = off
			continue
		case "mdat":
			// Fragments pair each mdat with the moof before it; a lone mdat is the
			// media of a progressive file, which this package does not read.
			return fmt.Errorf("mdat at %d without a moof", off)
		}
		// ftyp, free, skip, sidx, styp, emsg, prft and the like: kept as they are,
		// not needed for the progressive file.
		off = h.end()
		s.end = off
	}
	return nil
}

// decode reads the box h into buf (a new buffer when buf is nil, because decoded boxes
// may point into it) and decodes it with mp4ff. A panic inside mp4ff on damaged input
// becomes an error: a crash-damaged spool file must never take the recorder down.
func (s *scanner) decode(h boxHeader, buf []byte) (box mp4.Box, err error) {
	if h.size > maxIndexBox {
		return nil, fmt.Errorf("%s at %d: %d bytes: %w", h.typ, h.start, h.size, errGarbage)
	}
	if buf == nil {
		buf = make([]byte, h.size)
	}
	if _, err := s.r.Seek(h.start, io.SeekStart); err != nil {
		return nil, ioError{fmt.Errorf("seek to %s at %d: %w", h.typ, h.start, err)}
	}
	if _, err := io.ReadFull(s.r, buf); err != nil {
		return nil, ioError{fmt.Errorf("read %s at %d: %w", h.typ, h.start, err)}
	}
	defer func() {
		if r := recover(); r != nil {
			box, err = nil, fmt.Errorf("decode %s at %d: mp4ff panicked: %v", h.typ, h.start, r)
		}
	}()
	sr := bits.NewFixedSliceReader(buf)
	box, err = mp4.DecodeBoxSR(uint64(h.start), sr)
	if err == nil {
		err = sr.AccError()
	}
	if err != nil {
		return nil, fmt.Errorf("decode %s at %d: %w", h.typ, h.start, err)
	}
	return box, nil
}

// setInit takes the tracks of the init segment.
func (s *scanner) setInit(moov *mp4.MoovBox) error {
	if moov.Mvhd == nil {
		return errors.New("moov has no mvhd")
	}
	if moov.Mvex == nil {
		return fmt.Errorf("moov has no mvex: %w", ErrNotFMP4)
	}
	if len(moov.Traks) == 0 {
		return errors.New("moov has no track")
	}
	for _, trak := range moov.Traks {
		if trak.Tkhd == nil || trak.Mdia == nil || trak.Mdia.Mdhd == nil || trak.Mdia.Hdlr == nil ||
			trak.Mdia.Minf == nil || trak.Mdia.Minf.Stbl == nil || trak.Mdia.Minf.Stbl.Stsd == nil {
			return errors.New("trak without tkhd, mdhd, hdlr or stsd")
		}
		t := &trackTable{trak: trak, id: trak.Tkhd.TrackID, timescale: trak.Mdia.Mdhd.Timescale}
		switch trak.Mdia.Hdlr.HandlerType {
		case "vide":
			t.video = true
		case "soun":
		default:
			return fmt.Errorf("track %d: handler %q is neither video nor audio", t.id, trak.Mdia.Hdlr.HandlerType)
		}
		if t.timescale == 0 {
			return fmt.Errorf("track %d: timescale 0", t.id)
		}
		if s.track(t.id) >= 0 {
			return fmt.Errorf("two tracks with id %d", t.id)
		}
		t.trex, _ = moov.Mvex.GetTrex(t.id)
		s.tracks = append(s.tracks, t)
	}
	s.moov = moov
	return nil
}

// track returns the index of the track with id, or -1.
func (s *scanner) track(id uint32) int {
	for i, t := range s.tracks {
		if t.id == id {
			return i
		}
	}
	return -1
}

// addFragment checks that every trun of moof points inside mdat, then adds its samples
// to the tables. Nothing is added unless the whole fragment is valid.
func (s *scanner) addFragment(moof *mp4.MoofBox, h, mdat boxHeader) error {
	dataStart, dataEnd := mdat.payloadStart(), mdat.end()
	runs := s.runs[:0]
	var n int64
	trafEnd := h.start // the base of a traf that names none is where the previous one's data ended
	for i, traf := range moof.Trafs {
		if traf.Tfhd == nil {
			return errors.New("traf without tfhd")
		}
		idx := s.track(traf.Tfhd.TrackID)
		if idx < 0 {
			return fmt.Errorf("traf for unknown track %d", traf.Tfhd.TrackID)
		}
		t := s.tracks[idx]
		var base int64
		switch {
		case traf.Tfhd.HasBaseDataOffset():
			if traf.Tfhd.BaseDataOffset > math.MaxInt64/2 {
				return fmt.Errorf("base data offset %d", traf.Tfhd.BaseDataOffset)
			}
			base = int64(traf.Tfhd.BaseDataOffset)
		case traf.Tfhd.DefaultBaseIfMoof() || i == 0:
			base = h.start
		default:
			base = trafEnd
		}
		pos := base
		first := true
		for _, trun := range traf.Truns {
			trun.AddSampleDefaultValues(traf.Tfhd, t.trex)
			if trun.HasDataOffset() {
				pos = base + int64(trun.DataOffset)
			}
			var size int64
			for _, smp := range trun.Samples {
				size += int64(smp.Size)
			}
			if len(trun.Samples) == 0 {
				continue
			}
			if pos < dataStart || pos+size > dataEnd {
				return fmt.Errorf("track %d: sample data [%d, %d) outside the mdat [%d, %d)",
					t.id, pos, pos+size, dataStart, dataEnd)
			}
			r := run{t: t, track: idx, off: pos, size: size, samples: trun.Samples}
			if first && traf.Tfdt != nil {
				r.time, r.hasTime = traf.Tfdt.BaseMediaDecodeTime(), true
			}
			first = false
			runs = append(runs, r)
			n += int64(len(trun.Samples))
			pos += size
		}
		trafEnd = pos
	}
	// Every sample has its own bytes in the mdat, so there cannot be more samples than
	// bytes: this bounds the tables by the file size whatever the moof claims.
	if n > dataEnd-dataStart {
		return fmt.Errorf("%d samples in an mdat of %d bytes", n, dataEnd-dataStart)
	}
	defer func() {
		clear(runs) // the next fragment's truns replace these
		s.runs = runs[:0]
	}()
	s.samples += n
	s.fragments++
	if !s.collect {
		return nil
	}
	for _, r := range runs {
		r.t.add(r)
		s.chunks = append(s.chunks, chunk{src: r.off, size: r.size, track: r.track, n: uint32(len(r.samples))})
	}
	return nil
}
