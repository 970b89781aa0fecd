package flv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/livetape/livetape/media"
)

// ErrNoMedia is returned by Finalize for a file without a single audio or video frame.
var ErrNoMedia = errors.New("flv: no media frames")

// Stats describe a finalized FLV file.
type Stats struct {
	Duration    float64 // seconds: the end of the last frame of the longer track
	Size        int64   // bytes of the finalized file
	VideoFrames int
	AudioFrames int
	Truncated   int64 // bytes of an incomplete last tag that were dropped
}

// Finalize turns an append-only FLV recording (header and tags as written live, maybe
// cut short by a crash) into a seekable file: it drops an incomplete last tag and any
// script tags, then writes the header, an onMetaData with duration, filesize and a
// keyframes index (times, filepositions), and the tags. base supplies the descriptive
// fields (size, codecs, rates); it may be nil (a recording recovered after a crash).
// Width and height missing from base are taken from the AVC sequence header, and with
// no base at all stereo is taken from the audio tags, so that players that size their
// view from onMetaData get it right. The source is read twice and never held in memory;
// dst is written to a temporary file, synced and renamed.
//
// The keyframes index has one entry per timestamp that has a video tag of frame type
// keyframe (FLV spec E.4.3.1: pictures, and also sequence headers and end-of-sequence
// tags), pointing at the first such tag: the first picture's entry points at the
// sequence header before it, so a player seeking there reads the decoder
// configuration first. This is the index flvmeta computes and checks files against.
func Finalize(srcPath, dstPath string, base *Metadata) (Stats, error) {
	src, err := os.Open(srcPath)
	if err != nil {
		return Stats{}, fmt.Errorf("flv: finalize: %w", err)
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return Stats{}, fmt.Errorf("flv: finalize: %w", err)
	}

	// Pass 1: index the tags.
	r, err := NewReader(bufio.NewReaderSize(src, 1<<20))
	if err != nil {
		return Stats{}, fmt.Errorf("flv: finalize %s: %w", srcPath, err)
	}
	var (
		st           Stats
		kf           Keyframes
		mediaLen     int64 // bytes of audio/video tags that will be copied
		lastVideo    uint32
		lastAudio    uint32
		videoDur     uint32 = 40 // until two frames tell
		lastKeyframe uint32
		audioDur     uint32 = 23 // an AAC frame at 44.1 kHz, until two frames tell
		hasA         bool
		hasV         bool
		avcConfig    *media.AVCConfig // the first valid AVC sequence header
		stereo       bool             // the first audio tag's sound type
	)
	for {
		off := r.Offset
		p, err := r.ReadPacket()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				st.Truncated = info.Size() - off
			}
			break
		}
		if p.Kind == media.KindData {
			continue
		}
		if p.Kind == media.KindVideo {
			hasV = true
			if p.Keyframe && (len(kf.Times) == 0 || lastKeyframe != p.Timestamp) {
				lastKeyframe = p.Timestamp
				kf.Times = append(kf.Times, float64(p.Timestamp)/1000)
				kf.FilePositions = append(kf.FilePositions, float64(mediaLen)) // shifted below
			}
			if p.SequenceHeader && avcConfig == nil && p.VideoCodec() == media.VideoCodecAVC {
				avcConfig, _ = media.ParseAVCConfig(p.Payload()) // an invalid one tells nothing
			}
			if !p.SequenceHeader && isPicture(p) {
				st.VideoFrames++
				if p.Timestamp > lastVideo && lastVideo > 0 {
					videoDur = p.Timestamp - lastVideo
				}
				lastVideo = p.Timestamp
			}
		} else {
			if !hasA {
				stereo = len(p.Body()) > 0 && p.Body()[0]&1 == 1
			}
			hasA = true
			if !p.SequenceHeader {
				st.AudioFrames++
				if p.Timestamp > lastAudio && lastAudio > 0 {
					audioDur = p.Timestamp - lastAudio
				}
				lastAudio = p.Timestamp
			}
		}
		mediaLen += int64(len(p.Tag))
	}
	if st.VideoFrames+st.AudioFrames == 0 {
		return st, ErrNoMedia
	}
	var end uint32
	if st.VideoFrames > 0 {
		end = lastVideo + videoDur
	}
	if st.AudioFrames > 0 {
		end = max(end, lastAudio+audioDur)
	}
	st.Duration = float64(end) / 1000

	// The metadata's size does not depend on its values, only on which are present
	// and how many keyframes there are: encode once to learn where the tags start.
	meta := Metadata{}
	if base != nil {
		meta = *base
	}
	meta.Duration = st.Duration
	meta.FileSize = 1
	meta.Keyframes = &kf
	if hasV && meta.VideoCodecID == 0 {
		meta.VideoCodecID = media.VideoCodecAVC
	}
	if hasA && meta.AudioCodecID == 0 {
		meta.AudioCodecID = media.AudioFormatAAC
	}
	if avcConfig != nil && (meta.Width == 0 || meta.Height == 0) {
		meta.Width, meta.Height = float64(avcConfig.Width), float64(avcConfig.Height)
	}
	if base == nil && hasA {
		meta.Stereo = stereo
	}
	header := Header(hasA, hasV)
	metaTagLen := int64(len(meta.Encode()) + media.TagHeaderSize + media.PrevSizeLen)
	dataStart := int64(len(header)) + metaTagLen
	for i := range kf.FilePositions {
		kf.FilePositions[i] += float64(dataStart)
	}
	st.Size = dataStart + mediaLen
	meta.FileSize = float64(st.Size)
	metaPkt, err := media.NewPacket(media.KindData, 0, meta.Encode())
	if err != nil {
		return st, fmt.Errorf("flv: finalize: metadata: %w", err)
	}
	if int64(len(metaPkt.Tag)) != metaTagLen {
		return st, fmt.Errorf("flv: finalize: metadata changed size (%d, then %d bytes)", metaTagLen, len(metaPkt.Tag))
	}

	// Pass 2: copy the media tags after the new header and metadata.
	if _, err := src.Seek(0, io.SeekStart); err != nil {
		return st, fmt.Errorf("flv: finalize: %w", err)
	}
	r, err = NewReader(bufio.NewReaderSize(src, 1<<20))
	if err != nil {
		return st, fmt.Errorf("flv: finalize: %w", err)
	}
	err = writeAtomic(dstPath, func(w io.Writer) error {
		if _, err := w.Write(header); err != nil {
			return err
		}
		if _, err := w.Write(metaPkt.Tag); err != nil {
			return err
		}
		var copied int64
		for copied < mediaLen {
			p, err := r.ReadPacket()
			if err != nil {
				return fmt.Errorf("re-read: %w", err)
			}
			if p.Kind == media.KindData {
				continue
			}
			if _, err := w.Write(p.Tag); err != nil {
				return err
			}
			copied += int64(len(p.Tag))
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("flv: finalize %s: %w", dstPath, err)
	}
	return st, nil
}

// isPicture excludes the AVC end-of-sequence tag (AVCPacketType 2), which encoders
// mark as a keyframe but which holds no picture.
func isPicture(p *media.Packet) bool {
	b := p.Body()
	return p.VideoCodec() != media.VideoCodecAVC || (len(b) > 1 && b[1] == 1)
}

// writeAtomic writes path through a temporary file in the same directory, synced and
// renamed into place, so a crash never leaves a half-written file under the final name.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
