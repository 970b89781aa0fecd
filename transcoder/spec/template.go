package spec

import (
	"fmt"
	"regexp"
	"time"
)

var validName = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// GOP is the keyframe interval of every rendition. Keyframes are forced at the same
// timestamps (multiples of GOP from the start) in every rendition of one source, so
// HLS variants cut their segments on the same frames and a player can switch between
// them at any segment boundary.
const GOP = 2 * time.Second

// Template is one rendition's recipe. The picture keeps the source's aspect ratio and
// orientation: ShortSide is the height of a landscape picture and the width of a
// portrait one. A source smaller than the template is never upscaled.
type Template struct {
	Name      string  `json:"name" yaml:"name"`
	ShortSide int     `json:"short_side" yaml:"short_side"`               // pixels
	VideoKbps int     `json:"video_kbps" yaml:"video_kbps"`               // target average bitrate of the H.264 stream
	AudioKbps int     `json:"audio_kbps" yaml:"audio_kbps"`               // AAC bitrate
	MaxFPS    float64 `json:"max_fps,omitempty" yaml:"max_fps,omitempty"` // 0: the source's frame rate; never above it
}

// DefaultTemplates follow the seed's table of output specifications (sd/hd/uhd =
// 360p/540p/720p); the AAC bitrates grow with the picture within 64–128 kbps.
func DefaultTemplates() []Template {
	return []Template{
		{Name: "sd", ShortSide: 360, VideoKbps: 800, AudioKbps: 64},
		{Name: "hd", ShortSide: 540, VideoKbps: 1000, AudioKbps: 96},
		{Name: "uhd", ShortSide: 720, VideoKbps: 1800, AudioKbps: 128},
	}
}

// FindTemplate returns the template called name.
func FindTemplate(templates []Template, name string) (Template, bool) {
	for _, t := range templates {
		if t.Name == name {
			return t, true
		}
	}
	return Template{}, false
}

// Validate reports a template that cannot be encoded.
func (t Template) Validate() error {
	switch {
	case !validName.MatchString(t.Name):
		return fmt.Errorf("template %q: the name must be 1-32 of a-z 0-9 _ - (it names files and directories)", t.Name)
	case t.ShortSide < 16 || t.ShortSide > 4320:
		return fmt.Errorf("template %q: short_side %d out of range 16..4320", t.Name, t.ShortSide)
	case t.VideoKbps < 50 || t.VideoKbps > 100_000:
		return fmt.Errorf("template %q: video_kbps %d out of range 50..100000", t.Name, t.VideoKbps)
	case t.AudioKbps < 16 || t.AudioKbps > 512:
		return fmt.Errorf("template %q: audio_kbps %d out of range 16..512", t.Name, t.AudioKbps)
	case t.MaxFPS < 0 || t.MaxFPS > 240:
		return fmt.Errorf("template %q: max_fps %g out of range 0..240", t.Name, t.MaxFPS)
	}
	return nil
}

// Size is the picture size of this template for a source displayed at srcW×srcH:
// the short side becomes ShortSide (or stays the source's when that is smaller), the
// long side follows the aspect ratio, and both are even (4:2:0 chroma needs it).
func (t Template) Size(srcW, srcH int) (w, h int) {
	short, long := srcH, srcW
	portrait := srcH > srcW
	if portrait {
		short, long = srcW, srcH
	}
	target := min(t.ShortSide, short)
	scaledLong := (long*target + short/2) / short
	target, scaledLong = even(target), even(scaledLong)
	if portrait {
		return target, scaledLong
	}
	return scaledLong, target
}

// even rounds n down to an even number, at least 2.
func even(n int) int {
	return max(2, n&^1)
}
