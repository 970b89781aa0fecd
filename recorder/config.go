package recorder

import (
	"errors"
	"fmt"
	"time"

	"github.com/livetape/livetape/stream"
)

// Config is the recorder's part of livetape's configuration: what to record when a push
// URL says nothing. A push URL's record= and record_interval= always win.
type Config struct {
	// Formats recorded by default ("mp4", "hls", "flv"); empty records nothing unless
	// the push URL asks.
	Formats []string `yaml:"formats"`
	// Interval is the default fragment length (default 30m, at most 2h).
	Interval time.Duration `yaml:"interval"`
	// ReconnectWindow joins the pushes of a stream into one broadcast when a push
	// starts less than this after the previous one ended (default 60s, at most 1h; 0:
	// every push is a broadcast of its own). A push URL's record_reconnect_window wins.
	ReconnectWindow time.Duration `yaml:"reconnect_window"`
	// Stitch joins a broadcast's MP4 recordings into one replay when it ends (default
	// off). A push URL's record_stitch wins.
	Stitch bool `yaml:"stitch"`
	// Apps overrides Formats, Interval, ReconnectWindow and Stitch per app name.
	Apps map[string]AppConfig `yaml:"apps"`
	// Queue is the number of packets buffered between the live stream and the recorder
	// (default 16384, about 3 minutes of a 30 fps stream with audio).
	Queue int `yaml:"queue"`
}

// AppConfig is the recording default of one app.
type AppConfig struct {
	Formats  []string      `yaml:"formats"`
	Interval time.Duration `yaml:"interval"`
	// ReconnectWindow and Stitch override the global ones when set (0s is a window).
	ReconnectWindow *time.Duration `yaml:"reconnect_window"`
	Stitch          *bool          `yaml:"stitch"`
}

// DefaultConfig records nothing by default, in 30-minute fragments when asked.
func DefaultConfig() Config {
	return Config{Interval: stream.DefaultRecordInterval * time.Second, Queue: 16384,
		ReconnectWindow: stream.DefaultReconnectWindow * time.Second}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	check := func(name string, formats []string, interval time.Duration) {
		for _, f := range formats {
			switch f {
			case stream.FormatMP4, stream.FormatHLS, stream.FormatFLV:
			default:
				errs = append(errs, fmt.Errorf("%s.formats: %q is not mp4, hls or flv", name, f))
			}
		}
		if interval != 0 && (interval < time.Second || interval > stream.MaxRecordInterval*time.Second) {
			errs = append(errs, fmt.Errorf("%s.interval %v: must be in 1s..2h", name, interval))
		}
	}
	checkWindow := func(name string, w time.Duration) {
		if w < 0 || w > stream.MaxReconnectWindow*time.Second || w%time.Second != 0 {
			errs = append(errs, fmt.Errorf("%s.reconnect_window %v: must be whole seconds in 0s..1h", name, w))
		}
	}
	check("record", c.Formats, c.Interval)
	checkWindow("record", c.ReconnectWindow)
	if c.Interval == 0 {
		errs = append(errs, errors.New("record.interval: must be set"))
	}
	for app, a := range c.Apps {
		check("record.apps."+app, a.Formats, a.Interval)
		if a.ReconnectWindow != nil {
			checkWindow("record.apps."+app, *a.ReconnectWindow)
		}
	}
	if c.Queue < 256 {
		errs = append(errs, fmt.Errorf("record.queue %d: must be at least 256", c.Queue))
	}
	return errors.Join(errs...)
}

// plan returns what to record for a push: the URL's parameters, else the app's default,
// else the global default.
func (c Config) plan(p *stream.PushParams) (formats []string, interval time.Duration) {
	formats, interval = c.Formats, c.Interval
	if a, ok := c.Apps[p.App]; ok {
		if a.Formats != nil {
			formats = a.Formats
		}
		if a.Interval != 0 {
			interval = a.Interval
		}
	}
	if p.Record != nil {
		formats = p.Record
	}
	if p.Query.Has("record_interval") {
		interval = time.Duration(p.RecordInterval) * time.Second
	}
	return formats, interval
}

// Broadcast returns how a push joins broadcasts: its reconnect window and whether its
// broadcast is stitched when it ends. The URL's record_reconnect_window and
// record_stitch win, then the app's default, then the global one.
func (c Config) Broadcast(p *stream.PushParams) (window time.Duration, stitch bool) {
	window, stitch = c.ReconnectWindow, c.Stitch
	if a, ok := c.Apps[p.App]; ok {
		if a.ReconnectWindow != nil {
			window = *a.ReconnectWindow
		}
		if a.Stitch != nil {
			stitch = *a.Stitch
		}
	}
	if p.Query.Has("record_reconnect_window") {
		window = time.Duration(p.ReconnectWindow) * time.Second
	}
	if p.Query.Has("record_stitch") {
		stitch = p.Stitch
	}
	return window, stitch
}
