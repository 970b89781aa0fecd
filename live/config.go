package live

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config is the live server's part of livetape's configuration. The zero value is not
// usable: start from DefaultConfig.
type Config struct {
	// RTMPAddr is the RTMP listen address (default ":1935").
	RTMPAddr string `yaml:"rtmp_addr"`
	// PushKey signs push URLs (txSecret); empty turns push authentication off.
	PushKey string `yaml:"push_key"`
	// PushBackupKey is accepted as well as PushKey, for key rotation.
	PushBackupKey string `yaml:"push_backup_key"`
	// PlayKey signs play URLs; empty (the default) leaves playback open.
	PlayKey string `yaml:"play_key"`
	// IdleTimeout drops a publisher that sends nothing for this long (default 10s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// ViewerQueue is the number of packets queued per viewer before it skips to the
	// next keyframe (default 512).
	ViewerQueue int `yaml:"viewer_queue"`
	// HLS configures live HLS output.
	HLS HLSConfig `yaml:"hls"`
}

// HLSConfig configures live HLS.
type HLSConfig struct {
	// SegmentDuration is the target segment length; segments are cut at the first
	// keyframe after it (default 2s).
	SegmentDuration time.Duration `yaml:"segment_duration"`
	// Window is the number of segments listed in the live playlist (default 6).
	Window int `yaml:"window"`
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		RTMPAddr:    ":1935",
		IdleTimeout: 10 * time.Second,
		ViewerQueue: 512,
		HLS:         HLSConfig{SegmentDuration: 2 * time.Second, Window: 6},
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.RTMPAddr); err != nil {
		errs = append(errs, fmt.Errorf("live.rtmp_addr %q: %w", c.RTMPAddr, err))
	}
	if c.IdleTimeout < time.Second {
		errs = append(errs, fmt.Errorf("live.idle_timeout %v: must be at least 1s", c.IdleTimeout))
	}
	if c.ViewerQueue < 16 || c.ViewerQueue > 1<<16 {
		errs = append(errs, fmt.Errorf("live.viewer_queue %d: must be in 16..65536", c.ViewerQueue))
	}
	if c.HLS.SegmentDuration < 500*time.Millisecond || c.HLS.SegmentDuration > time.Minute {
		errs = append(errs, fmt.Errorf("live.hls.segment_duration %v: must be in 500ms..1m", c.HLS.SegmentDuration))
	}
	if c.HLS.Window < 2 || c.HLS.Window > 100 {
		errs = append(errs, fmt.Errorf("live.hls.window %d: must be in 2..100", c.HLS.Window))
	}
	return errors.Join(errs...)
}
