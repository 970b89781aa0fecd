package recorder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Fragment states, in order.
const (
	StateRecording = "recording" // being written (or cut short by a crash)
	StateClosed    = "closed"    // finalized, not yet handed on
	StateHandedOn  = "handed_on" // the sink took it
)

// Manifest describes one recorded fragment in one format. It sits beside the fragment in
// the spool as NNNN.FORMAT.json and is the truth about it across crashes.
type Manifest struct {
	FileID   string `json:"file_id"`
	App      string `json:"app"`
	StreamID string `json:"stream_id"`
	PushID   string `json:"push_id"`
	// BroadcastID is the broadcast the push belongs to (stream.Publication): the
	// catalog entry and the callbacks carry it. Empty in manifests of older versions.
	BroadcastID string `json:"broadcast_id,omitempty"`
	Seq         int    `json:"seq"`
	Format      string `json:"format"`
	// Path is the finished file (for HLS the playlist), relative to the manifest's folder.
	Path        string    `json:"path"`
	StartTime   time.Time `json:"start_time"`
	EndTime     time.Time `json:"end_time,omitzero"`
	Duration    float64   `json:"duration"` // media seconds
	Size        int64     `json:"size"`     // bytes (for HLS: playlist and segments)
	StreamParam string    `json:"stream_param"`
	AudioOnly   bool      `json:"audio_only,omitempty"`
	State       string    `json:"state"`
	// Recovered is set on a fragment finalized after a crash.
	Recovered bool `json:"recovered,omitempty"`

	dir string // the folder holding the manifest
}

// Dir is the folder of the manifest and its files.
func (m *Manifest) Dir() string { return m.dir }

// File is the absolute path of the finished file.
func (m *Manifest) File() string { return filepath.Join(m.dir, m.Path) }

func (m *Manifest) name() string { return fmt.Sprintf("%04d.%s.json", m.Seq, m.Format) }

// save writes the manifest in its folder.
func (m *Manifest) save() error { return m.saveAs(filepath.Join(m.dir, m.name())) }

// saveAs writes the manifest atomically (temporary file, fsync, rename).
func (m *Manifest) saveAs(path string) error { return saveJSON(path, m) }

func (m *Manifest) remove() error { return os.Remove(filepath.Join(m.dir, m.name())) }

// LoadManifest reads a manifest file.
func LoadManifest(path string) (*Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := &Manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("recorder: manifest %s: %w", path, err)
	}
	m.dir = filepath.Dir(path)
	return m, nil
}

// ManifestFile is the path of the manifest itself.
func (m *Manifest) ManifestFile() string { return filepath.Join(m.dir, m.name()) }
