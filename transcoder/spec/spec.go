// Package spec describes a transcode without doing one: templates, what is asked
// (Request) and what comes back (Progress, Result, Thumbnail), and the wire format
// between livetape and the livetape-transcoder executable. It is pure Go, so that
// livetape itself never links FFmpeg: package transcoder (cgo) does the work inside
// livetape-transcoder, package transcoder/runner runs that executable.
package spec

import (
	"errors"
	"time"
)

// ErrBadInput marks an input that can never be transcoded: not a media file, truncated,
// corrupt, or in a codec this build cannot decode. A job that gets it fails for good
// instead of retrying.
var ErrBadInput = errors.New("transcoder: bad input")

// MasterPlaylist is the name of an ABR set's master playlist inside its directory.
const MasterPlaylist = "master.m3u8"

// Format is an output container.
type Format string

const (
	// FormatMP4 is a progressive MP4 with its index in front (fast start).
	FormatMP4 Format = "mp4"
	// FormatHLS is an HLS VOD playlist (index.m3u8) with MPEG-TS segments of GOP length.
	FormatHLS Format = "hls"
)

// Output is one rendition to produce.
type Output struct {
	Template Template `json:"template"`
	Format   Format   `json:"format"`
	// Path is the MP4 file, or for HLS the directory that receives index.m3u8 and its
	// segments. It appears only once the rendition is complete (written under a
	// ".partial" name, then renamed); an existing one is replaced.
	Path string `json:"path"`
}

// Progress reports how far the source has been read. On the wire both are
// nanoseconds.
type Progress struct {
	Done  time.Duration `json:"done"`  // media time of the last decoded video frame
	Total time.Duration `json:"total"` // the source's duration (0 when unknown)
}

// Percent is the progress in 0–100 (0 when the total is unknown).
func (p Progress) Percent() float64 {
	if p.Total <= 0 {
		return 0
	}
	return min(100, 100*float64(p.Done)/float64(p.Total))
}

// Result describes a finished transcode.
type Result struct {
	Duration time.Duration `json:"duration"` // the source's (nanoseconds on the wire)
	Outputs  []Rendition   `json:"outputs"`  // in the order of the outputs asked for
}

// Rendition is one finished output.
type Rendition struct {
	Template     string  `json:"template"`
	Format       Format  `json:"format"`
	Path         string  `json:"path"`
	Width        int     `json:"width"`
	Height       int     `json:"height"`
	FrameRate    float64 `json:"frame_rate"`
	Bitrate      int64   `json:"bitrate"`       // average bits/s of the encoded audio and video, container excluded
	VideoBitrate int64   `json:"video_bitrate"` // average bits/s of the encoded video
	Codecs       string  `json:"codecs"`        // RFC 6381, for HLS CODECS: "avc1.64001f,mp4a.40.2"
}

// DefaultThumbnailAt is where a poster is taken when no offset is given: this
// fraction of the source's duration (past the black or countdown of the first seconds).
const DefaultThumbnailAt = 0.10

// ThumbnailOptions choose the picture.
type ThumbnailOptions struct {
	At        time.Duration `json:"at,omitempty"`         // offset in the source; 0: DefaultThumbnailAt of its duration
	ShortSide int           `json:"short_side,omitempty"` // 0: the source's size; never upscaled
}

// Thumbnail is a written poster.
type Thumbnail struct {
	Width  int           `json:"width"`
	Height int           `json:"height"`
	At     time.Duration `json:"at"` // the timestamp of the frame taken (relative to the start)
}
