package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Recording is the catalog entry of a stored recording: the JSON kept beside its media
// in storage ({key stem}.json). The JSON field names are a contract (API answers,
// callbacks, entries already in buckets): never rename one.
type Recording struct {
	FileID      string    `json:"file_id"`
	App         string    `json:"app"`
	StreamID    string    `json:"stream_id"`
	PushID      string    `json:"push_id"`
	Seq         int       `json:"seq"`
	Format      string    `json:"format"`            // mp4, flv or hls
	Key         string    `json:"key"`               // the object to play (HLS: its playlist)
	Objects     []string  `json:"objects,omitempty"` // every object of the recording (HLS: playlist and segments)
	StartTime   time.Time `json:"start_time"`
	EndTime     time.Time `json:"end_time"`
	Duration    float64   `json:"duration"` // seconds
	Size        int64     `json:"size"`     // bytes, all objects
	StreamParam string    `json:"stream_param"`
	AudioOnly   bool      `json:"audio_only,omitempty"`
	Recovered   bool      `json:"recovered,omitempty"`
	VideoURL    string    `json:"video_url"`
	StoredAt    time.Time `json:"stored_at"`
	// CatalogKey is the key of this entry itself.
	CatalogKey string `json:"catalog_key"`

	// NodeID names the node that recorded it (its spool held the fragment).
	NodeID string `json:"node_id,omitempty"`
	// Type is one of the Type* constants; empty reads as TypeFragment.
	Type string `json:"type,omitempty"`
	// BroadcastID groups the fragments stitched into one broadcast. Always in the JSON
	// (empty when the recording belongs to none): API clients rely on the field.
	BroadcastID string `json:"broadcast_id"`
	// SourceFileID is the recording a rendition or clip was made from.
	SourceFileID string `json:"source_file_id,omitempty"`
	// SourceFileIDs are the recordings a stitch joined (broadcast, clip), in order.
	SourceFileIDs []string `json:"source_file_ids,omitempty"`
	// Template is, for a rendition, the transcode template it was made with ("sd",
	// "hd"…, or "abr" for an HLS ABR set); for other types the key template the
	// objects were named with (DefaultKeyTemplate when empty). The catalog derives
	// nothing from it once an entry is stored (CatalogKey names the entry).
	Template string `json:"template,omitempty"`

	// Width, Height and Bitrate (average bits/s, audio and video) describe a
	// rendition (an ABR set: its highest variant).
	Width   int   `json:"width,omitempty"`
	Height  int   `json:"height,omitempty"`
	Bitrate int64 `json:"bitrate,omitempty"`
	// Poster is the key of the recording's JPEG poster (stored beside it, the key
	// stem + ".jpg"), PosterURL where players fetch it; both empty until the poster
	// job ran.
	Poster    string `json:"poster,omitempty"`
	PosterURL string `json:"poster_url,omitempty"`
}

// Recording types.
const (
	TypeFragment  = "fragment"  // a fragment cut while recording a push
	TypeBroadcast = "broadcast" // fragments stitched into one file
	TypeRendition = "rendition" // a transcode of another recording
	TypeClip      = "clip"      // a cut of another recording
)

func validType(t string) bool {
	switch t {
	case TypeFragment, TypeBroadcast, TypeRendition, TypeClip:
		return true
	}
	return false
}

// DefaultKeyTemplate names a recording's objects in storage; {ext} is mp4 or flv, and an
// HLS recording is a folder of that name (without the extension) holding index.m3u8
// and its segments.
const DefaultKeyTemplate = "{app}/{stream_id}/{start}_{file_id}.{ext}"

// ValidateKeyTemplate checks that a template names each recording apart.
func ValidateKeyTemplate(t string) error {
	if !strings.Contains(t, "{file_id}") || !strings.HasSuffix(t, ".{ext}") {
		return fmt.Errorf("key template %q: must contain {file_id} and end with .{ext}", t)
	}
	return nil
}

// KeyStem expands template (DefaultKeyTemplate when empty) without its ".{ext}": the
// recording's objects and its catalog entry share it. Placeholders: {app} {stream_id}
// {start} {file_id} {format} {date}.
func (r *Recording) KeyStem(template string) string {
	if template == "" {
		template = DefaultKeyTemplate
	}
	return strings.NewReplacer(
		"{app}", r.App,
		"{stream_id}", r.StreamID,
		"{start}", r.StartTime.UTC().Format("20060102T150405Z"),
		"{file_id}", r.FileID,
		"{format}", r.Format,
		"{date}", r.StartTime.UTC().Format("2006/01/02"),
	).Replace(strings.TrimSuffix(template, ".{ext}"))
}

// EntryKey is where the catalog entry of a recording lives: beside its media, with the
// extension .json (its CatalogKey once stored).
func EntryKey(r *Recording) string {
	if r.CatalogKey != "" {
		return r.CatalogKey
	}
	return r.KeyStem(r.Template) + ".json"
}

// PublicStreamParam removes the push credentials (txSecret, txTime; any letter case)
// from the query string of a push URL and keeps every other parameter as it was. The
// catalog applies it to stream_param on every write and every read: a signature that
// still works until txTime must never be stored in a bucket or served by the API.
func PublicStreamParam(q string) string {
	lead := ""
	if strings.HasPrefix(q, "?") {
		lead, q = "?", q[1:]
	}
	if q == "" {
		return lead
	}
	var kept []string
	for pair := range strings.SplitSeq(q, "&") {
		name, _, _ := strings.Cut(pair, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		name = strings.TrimSpace(name)
		if strings.EqualFold(name, "txSecret") || strings.EqualFold(name, "txTime") {
			continue
		}
		kept = append(kept, pair)
	}
	if len(kept) == 0 {
		return ""
	}
	return lead + strings.Join(kept, "&")
}

// normalize makes an entry safe to store or serve: credentials out of stream_param, the
// default type filled in.
func (r *Recording) normalize() {
	r.StreamParam = PublicStreamParam(r.StreamParam)
	if r.Type == "" {
		r.Type = TypeFragment
	}
}

// maxFieldLen bounds the fields that name index keys, so that one hostile entry cannot
// make keys of unbounded length.
const maxFieldLen = 512

// validate checks what the index relies on: the fields that name its sets are present,
// bounded and free of NUL, and the type is known.
func (r *Recording) validate() error {
	var errs []error
	for _, f := range []struct{ name, v string }{
		{"file_id", r.FileID}, {"app", r.App}, {"stream_id", r.StreamID}, {"format", r.Format},
	} {
		switch {
		case f.v == "":
			errs = append(errs, fmt.Errorf("%s is empty", f.name))
		case len(f.v) > maxFieldLen:
			errs = append(errs, fmt.Errorf("%s is longer than %d bytes", f.name, maxFieldLen))
		case strings.ContainsRune(f.v, 0):
			errs = append(errs, fmt.Errorf("%s contains NUL", f.name))
		}
	}
	if !validType(r.Type) {
		errs = append(errs, fmt.Errorf("type %q is not one of fragment, broadcast, rendition, clip", r.Type))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("catalog: entry %q: %w", r.FileID, err)
	}
	return nil
}

// maxEntrySize bounds a catalog JSON read from storage before it is decoded: an entry
// is a few hundred bytes, HLS entries list their segments (a 2-hour recording in 2 s
// segments is 3 600 names).
const maxEntrySize = 4 << 20

// decodeEntry parses a catalog JSON and normalizes it.
func decodeEntry(b []byte) (*Recording, error) {
	var r Recording
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, err
	}
	r.normalize()
	return &r, nil
}
