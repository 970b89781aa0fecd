package recorder

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
	"github.com/livetape/livetape/packager/hls"
	"github.com/livetape/livetape/packager/wbuf"
)

// hlsTarget is the segment length of HLS recordings (VOD wants fewer, longer segments
// than live).
const hlsTarget = 4 * time.Second

// partSuffix marks a file still being written; recovery finalizes what it finds.
const partSuffix = ".part"

// headers are what every format writer of a fragment starts from.
type headers struct {
	video, audio *media.Packet // sequence headers, stamped 0; nil when absent
	meta         *flv.Metadata // from the publisher's onMetaData, maybe nil
}

// formatWriter records one fragment in one format. Packets arrive rebased (the
// fragment starts at 0), beginning with a keyframe, as media.Packet.Retimed copies:
// their Timestamp is the rebased one, their Tag's header is not.
type formatWriter interface {
	writePacket(p *media.Packet) error
	// flushBuffer writes out what the writer buffers and lets the buffer go until
	// the next packet (the recorder has caught up with the stream).
	flushBuffer() error
	// sync makes what was written so far durable (called about once a second).
	sync() error
	// finish closes and finalizes the fragment; it returns the finished file's name
	// (relative to the fragment's folder) and size.
	finish() (name string, size int64, err error)
	// abort removes whatever was written.
	abort()
}

func newFormatWriter(format, dir string, seq int, h headers) (formatWriter, error) {
	base := filepath.Join(dir, fmt.Sprintf("%04d", seq))
	switch format {
	case "flv":
		return newFLVWriter(base+".flv", h)
	case "mp4":
		return newMP4Writer(base+".mp4", h)
	}
	return nil, fmt.Errorf("recorder: unknown format %q", format)
}

// flvWriter appends tags to NNNN.flv.part; finish rewrites it as NNNN.flv with the
// duration, filesize and keyframes metadata.
type flvWriter struct {
	path string
	meta *flv.Metadata
	f    *os.File
	w    *wbuf.Writer // a shared buffer between flushes, not one per stream
	hdr  []byte       // tag header scratch
}

func newFLVWriter(path string, h headers) (*flvWriter, error) {
	f, err := os.Create(path + partSuffix)
	if err != nil {
		return nil, fmt.Errorf("recorder: flv: %w", err)
	}
	w := &flvWriter{path: path, meta: h.meta, f: f, w: wbuf.New(f)}
	w.w.Write(flv.Header(h.audio != nil, h.video != nil))
	for _, p := range []*media.Packet{h.video, h.audio} {
		if p != nil {
			w.w.Write(p.Tag)
		}
	}
	return w, nil
}

func (w *flvWriter) writePacket(p *media.Packet) error {
	// The tag header from p's fields: p is a Retimed copy whose Tag still holds the
	// publisher's timestamp.
	w.hdr = p.AppendTagHeader(w.hdr[:0])
	w.w.Write(w.hdr)
	_, err := w.w.Write(p.Tag[media.TagHeaderSize:])
	return err
}

func (w *flvWriter) flushBuffer() error { return w.w.Flush() }

func (w *flvWriter) sync() error {
	if err := w.w.Flush(); err != nil {
		return err
	}
	return w.f.Sync()
}

func (w *flvWriter) finish() (string, int64, error) {
	err := w.sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("recorder: flv: %w", err)
	}
	return finishFLV(w.path, w.meta)
}

func (w *flvWriter) abort() {
	w.f.Close()
	os.Remove(w.path + partSuffix)
	os.Remove(w.path)
}

// finishFLV finalizes path+".part" into path. The part stays until the manifest says
// closed (see fragment.close): a crash in between finalizes it again.
func finishFLV(path string, meta *flv.Metadata) (string, int64, error) {
	st, err := flv.Finalize(path+partSuffix, path, meta)
	if err != nil {
		return "", 0, err
	}
	return filepath.Base(path), st.Size, nil
}

// hlsPlaylist is the playlist of an HLS fragment (NNNN.hls/index.m3u8) spooled by a
// version that recorded HLS per fragment: recovery still finalizes those.
const hlsPlaylist = "index.m3u8"

func writePlaylist(dir string, entries []hls.PlaylistEntry, ended bool) error {
	pl := hls.Playlist{VOD: ended, Ended: ended, Entries: entries}
	tmp := filepath.Join(dir, hlsPlaylist+".tmp")
	if err := os.WriteFile(tmp, pl.AppendTo(nil), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, hlsPlaylist))
}
