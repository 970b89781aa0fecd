package fmp4

import (
	"errors"
	"fmt"
	"os"
)

// Recover makes a fragmented MP4 left by a crash usable: it keeps the init segment and
// every complete moof+mdat pair, and truncates the file after the last one. The scan
// stops at the first box that runs past the end of the file, a moof whose mdat is
// missing, cut short or not where the moof's sample offsets point, or bytes that are
// not a box; whatever follows is lost, which for a file flushed every second is at
// most about a second of media.
//
// It returns the size kept. A file with an init segment but no complete fragment is
// truncated after the init and returned with ErrNoMedia, so the caller can discard it.
// A file that is not a fragmented MP4 (no ftyp first, or a moov without mvex) is left
// untouched and ErrNotFMP4 is returned; a file that cannot be read is left untouched
// too. After truncating, Recover fsyncs the file.
func Recover(f *os.File) (size int64, err error) {
	info, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("fmp4: recover: %w", err)
	}
	s := &scanner{r: f, size: info.Size()}
	scanErr := s.scan()
	var ioErr ioError
	if errors.As(scanErr, &ioErr) {
		return 0, fmt.Errorf("fmp4: recover: %w", scanErr)
	}
	if errors.Is(scanErr, ErrNotFMP4) {
		// Not ours (say a progressive MP4): leave it whole.
		return 0, fmt.Errorf("fmp4: recover: %w", scanErr)
	}
	if s.end < info.Size() {
		if err := f.Truncate(s.end); err != nil {
			return 0, fmt.Errorf("fmp4: recover: %w", err)
		}
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("fmp4: recover: %w", err)
		}
	}
	if s.fragments == 0 {
		return s.end, ErrNoMedia
	}
	return s.end, nil
}
