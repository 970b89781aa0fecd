package jobs

import (
	"errors"
	"fmt"
	"strings"
)

// FragmentHandle names a closed recording fragment in the spool of the node
// that recorded it: what an upload task knows of the file instead of a path,
// which would mean nothing on another machine (or after the data dir moved).
// The node's [Spool] resolves it.
type FragmentHandle struct {
	// NodeID is the node whose spool holds the fragment; its upload task
	// waits in that node's queue (NodeQueue).
	NodeID   string `json:"node_id"`
	App      string `json:"app"`
	StreamID string `json:"stream_id"`
	PushID   string `json:"push_id"`
	Seq      int    `json:"seq"`
	Format   string `json:"format"` // mp4, flv or hls
}

// String is the handle as it appears in logs and errors.
func (h FragmentHandle) String() string {
	return fmt.Sprintf("%s:%s/%s/%s/%04d.%s", h.NodeID, h.App, h.StreamID, h.PushID, h.Seq, h.Format)
}

// Fragment is a closed fragment as its spool gives it to the uploader.
type Fragment struct {
	// Files of the fragment: the one file of an MP4 or FLV fragment; the
	// playlist (name ending in .m3u8) and the segments of an HLS one.
	Files []FragmentFile
}

// FragmentFile is one file of a fragment, on this node's disk.
type FragmentFile struct {
	// Name is the file's name within the fragment ("0001.mp4",
	// "index.m3u8", "seg_00001.ts"): an HLS file is stored under the
	// recording's key stem + "/" + Name, the file of any other format gets
	// the extension of Name.
	Name string
	// Path is where to read it; it is never put in a task.
	Path string
}

// Spool is the recorder's spool as the uploader sees it: it owns the
// layout, the manifests and the cleanup, and the uploader only asks for a
// fragment's files and, once storage holds them, for their removal.
type Spool interface {
	// Fragment returns the files of the closed fragment h. The error wraps
	// ErrFragmentGone when the spool no longer holds it (an earlier run
	// uploaded and removed it).
	Fragment(h FragmentHandle) (Fragment, error)
	// Remove deletes the fragment's files and manifest, and the folders
	// that leaves empty. Removing a fragment that is gone is not an error.
	Remove(h FragmentHandle) error
}

// ErrFragmentGone: the spool does not hold the fragment (any more).
var ErrFragmentGone = errors.New("jobs: fragment not in the spool")

// checkFragment refuses a fragment whose files the uploader cannot name in
// storage: it would store something unplayable.
func checkFragment(format string, f Fragment) error {
	if len(f.Files) == 0 {
		return errors.New("no files")
	}
	playlists := 0
	for _, file := range f.Files {
		if file.Name == "" || strings.ContainsAny(file.Name, `/\`) || file.Name == "." || file.Name == ".." {
			return fmt.Errorf("file name %q: want a plain name", file.Name)
		}
		if strings.HasSuffix(file.Name, ".m3u8") {
			playlists++
		}
	}
	if format == "hls" && playlists != 1 {
		return fmt.Errorf("hls fragment with %d playlists, want 1", playlists)
	}
	if format != "hls" && len(f.Files) != 1 {
		return fmt.Errorf("%s fragment of %d files, want 1", format, len(f.Files))
	}
	return nil
}
