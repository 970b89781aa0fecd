package transcoder

import "github.com/livetape/livetape/transcoder/spec"

// The types a transcode is described with live in package spec, which is pure Go:
// livetape, which does not link FFmpeg, builds requests for livetape-transcoder with
// them. These aliases keep this package's API whole.

// GOP is the keyframe interval of every rendition. Keyframes are forced at the same
// timestamps (multiples of GOP from the start) in every rendition of one source, so
// HLS variants cut their segments on the same frames and a player can switch between
// them at any segment boundary.
const GOP = spec.GOP

// Template is one rendition's recipe (spec.Template).
type Template = spec.Template

// DefaultTemplates are sd, hd and uhd (spec.DefaultTemplates).
func DefaultTemplates() []Template { return spec.DefaultTemplates() }

// FindTemplate returns the template called name.
func FindTemplate(templates []Template, name string) (Template, bool) {
	return spec.FindTemplate(templates, name)
}

// Format is an output container (spec.Format).
type Format = spec.Format

// The output formats (spec.FormatMP4, spec.FormatHLS).
const (
	FormatMP4 = spec.FormatMP4
	FormatHLS = spec.FormatHLS
)

// What is asked and answered (package spec documents them).
type (
	Output           = spec.Output
	Progress         = spec.Progress
	Result           = spec.Result
	Rendition        = spec.Rendition
	ThumbnailOptions = spec.ThumbnailOptions
	Thumbnail        = spec.Thumbnail
)

// MasterPlaylist is the name of an ABR set's master playlist inside its directory.
const MasterPlaylist = spec.MasterPlaylist

// DefaultThumbnailAt is where a poster is taken when no offset is given.
const DefaultThumbnailAt = spec.DefaultThumbnailAt

// ErrBadInput marks an input that can never be transcoded (spec.ErrBadInput).
var ErrBadInput = spec.ErrBadInput
