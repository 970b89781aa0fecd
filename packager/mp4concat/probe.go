package mp4concat

import (
	"bytes"
	"fmt"
	"time"

	"github.com/Eyevinn/mp4ff/mp4"
)

// Info describes what an input holds, for a caller choosing a transcode template when
// the inputs' configurations differ.
type Info struct {
	Width, Height int           // of the video's sample entry; 0 without video
	Duration      time.Duration // the longer track's, with its initial delay
}

// Probe reads the moov of in, as Concat does, and describes it.
func Probe(in Input) (Info, error) {
	src, err := parse(in)
	if err != nil {
		return Info{}, err
	}
	var info Info
	for _, t := range src.tracks {
		if t != nil {
			info.Duration = max(info.Duration, time.Duration(t.duration()))
		}
	}
	if t := src.tracks[video]; t != nil {
		if e, ok := t.trak.Mdia.Minf.Stbl.Stsd.Children[0].(*mp4.VisualSampleEntryBox); ok {
			info.Width, info.Height = int(e.Width), int(e.Height)
		}
	}
	return info, nil
}

// MismatchError says which track of which input differs from the inputs before it,
// in words a user can act on. It wraps ErrConfigMismatch.
type MismatchError struct {
	Input string // the input's Name
	Track string // "video" or "audio"
	Was   string // the configuration of the inputs before, e.g. "avc1 1280x720 profile 100 level 31"
	Now   string // the input's
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("mp4concat: %s: %s track: %s", e.Input, e.Track, e.Reason())
}

// Reason is the difference alone: "avc1 640x360 … then avc1 1280x720 …", or what
// differs between two configurations that read alike.
func (e *MismatchError) Reason() string {
	if e.Was != e.Now {
		return e.Was + " then " + e.Now
	}
	what := "SPS/PPS"
	if e.Track == audio.String() {
		what = "AudioSpecificConfig"
	}
	return fmt.Sprintf("%s in both, with a different %s", e.Now, what)
}

func (e *MismatchError) Unwrap() error { return ErrConfigMismatch }

// mismatch is the error of input name's track k, configured now, after was.
func mismatch(name string, k kind, was, now []byte) error {
	return &MismatchError{Input: name, Track: k.String(), Was: summary(was), Now: summary(now)}
}

// summary is the readable part of a configKey: codec, timescale, size or channels,
// without the parameter sets' bytes.
func summary(key []byte) string {
	for _, sep := range []string{" sps ", " pps ", " asc "} {
		if i := bytes.Index(key, []byte(sep)); i >= 0 {
			key = key[:i]
		}
	}
	return string(key)
}
