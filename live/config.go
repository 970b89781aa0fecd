package live

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
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
	// MaxMessageSize bounds one RTMP message (a video frame) of an accepted publisher;
	// a larger one is refused before it is buffered and the connection closed. The
	// default, 8 MiB, holds a 4K keyframe with room to spare (an IDR frame of 4K at
	// 50 Mbit/s, the top of common ingest specs, is 1 to 3 MB). RTMP's own limit is
	// 16 MiB - 1 (a 24-bit length).
	MaxMessageSize ByteSize `yaml:"max_message_size"`
	// ReadMerge, when set, holds publishers' reads until a shared tick of this period,
	// so the media of all of them is read in one burst per period: less CPU on a node
	// with many pushes (about a fifth at 50ms with 16 recorded pushes), for up to
	// this much more latency to viewers. 0 (the default) reads as media arrives.
	ReadMerge time.Duration `yaml:"read_merge"`
	// HLS configures live HLS output.
	HLS HLSConfig `yaml:"hls"`
	// OnPublish, when set, is a URL asked before a push is accepted (after the
	// signature check): a POST of JSON {app, stream, client_ip, params, node_id};
	// a 2xx answer accepts, anything else refuses with the answer's body as reason.
	OnPublish string `yaml:"on_publish"`
	// OnPublishTimeout bounds the on_publish request; no answer in time refuses the
	// push (default 3s).
	OnPublishTimeout time.Duration `yaml:"on_publish_timeout"`
	// NodeID names this node in the on_publish request (set from jobs.node_id).
	NodeID string `yaml:"-"`
	// TranscodeTemplates are the template names a push may ask for with transcode=
	// (set from the transcode configuration; DefaultTranscodeTemplates when empty).
	TranscodeTemplates []string `yaml:"-"`
}

// HLSConfig configures live HLS.
type HLSConfig struct {
	// SegmentDuration is the target segment length; segments are cut at the first
	// keyframe after it (default 2s).
	SegmentDuration time.Duration `yaml:"segment_duration"`
	// Window is the number of segments listed in the live playlist (default 6).
	Window int `yaml:"window"`
	// Dir is where live segments are written (in a run-* folder per process, removed
	// at shutdown and by the next start): the page cache holds them instead of the Go
	// heap. Empty (the default) uses a private temporary folder; livetape serve
	// passes DATA_DIR/live-hls.
	Dir string `yaml:"dir"`
}

// DefaultConfig returns the defaults documented on each field.
func DefaultConfig() Config {
	return Config{
		RTMPAddr:       ":1935",
		IdleTimeout:    10 * time.Second,
		ViewerQueue:    512,
		MaxMessageSize: 8 << 20,
		HLS:            HLSConfig{SegmentDuration: 2 * time.Second, Window: 6},

		OnPublishTimeout: 3 * time.Second,
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
	if c.MaxMessageSize < minMaxMessageSize || c.MaxMessageSize > maxRTMPMessageSize {
		errs = append(errs, fmt.Errorf("live.max_message_size %v: must be in %v..%v", c.MaxMessageSize, ByteSize(minMaxMessageSize), ByteSize(maxRTMPMessageSize)))
	}
	if c.ReadMerge < 0 || c.ReadMerge > maxReadMerge {
		errs = append(errs, fmt.Errorf("live.read_merge %v: must be in 0..%v", c.ReadMerge, maxReadMerge))
	}
	if c.HLS.SegmentDuration < 500*time.Millisecond || c.HLS.SegmentDuration > time.Minute {
		errs = append(errs, fmt.Errorf("live.hls.segment_duration %v: must be in 500ms..1m", c.HLS.SegmentDuration))
	}
	if c.HLS.Window < 2 || c.HLS.Window > 100 {
		errs = append(errs, fmt.Errorf("live.hls.window %d: must be in 2..100", c.HLS.Window))
	}
	if c.OnPublish != "" {
		if u, err := url.Parse(c.OnPublish); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("live.on_publish %q: must be an http(s) URL", c.OnPublish))
		}
	}
	if c.OnPublishTimeout < 100*time.Millisecond || c.OnPublishTimeout > time.Minute {
		errs = append(errs, fmt.Errorf("live.on_publish_timeout %v: must be in 100ms..1m", c.OnPublishTimeout))
	}
	return errors.Join(errs...)
}

// maxReadMerge bounds live.read_merge: beyond it the latency added to every viewer
// outweighs what is saved.
const maxReadMerge = 500 * time.Millisecond

// Bounds of live.max_message_size: below 64 KiB ordinary keyframes are refused, and
// 16 MiB is above every RTMP message (its length is 24 bits): no limit.
const (
	minMaxMessageSize  = 64 << 10
	maxRTMPMessageSize = 1 << 24
)

// ByteSize is a number of bytes, written as a plain number or with a binary unit:
// 8388608, 8MiB, 512KiB.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	size   ByteSize
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}

// ParseByteSize parses a ByteSize (see its doc).
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	unit := ByteSize(1)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(t, u.suffix); ok {
			t, unit = strings.TrimSpace(num), u.size
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/int64(unit) {
		return 0, fmt.Errorf("size %q: want bytes or a number with KiB, MiB or GiB", s)
	}
	return ByteSize(n) * unit, nil
}

// String writes the size in the largest unit that divides it: 8MiB.
func (b ByteSize) String() string {
	for _, u := range byteUnits {
		if b != 0 && b%u.size == 0 {
			return strconv.FormatInt(int64(b/u.size), 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// UnmarshalYAML accepts a ByteSize in a YAML file.
func (b *ByteSize) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}
