package stream

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Record formats a push URL may ask for with record=.
const (
	FormatMP4 = "mp4"
	FormatHLS = "hls"
	FormatFLV = "flv"
)

// MaxRecordInterval is the longest fragment record_interval allows, in seconds.
const MaxRecordInterval = 7200

// DefaultRecordInterval is the fragment length when record_interval is absent.
const DefaultRecordInterval = 1800

var streamIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// ErrBadStreamID is returned for stream ids that livetape refuses.
var ErrBadStreamID = errors.New("stream id must be 1-128 characters of A-Z a-z 0-9 _ . - and not . or ..")

// ValidStreamID checks a stream id (or app name): it reaches the file system later, so
// only a safe alphabet is allowed.
func ValidStreamID(id string) error {
	if !streamIDPattern.MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("%w: %q", ErrBadStreamID, id)
	}
	return nil
}

// PushParams are the parameters of a push URL, validated.
type PushParams struct {
	App      string
	StreamID string
	// Query is the push URL's whole query (txSecret, txTime, record…, and anything
	// else the broadcaster sent). It holds the push credentials: what leaves the
	// process takes StreamParam instead.
	Query url.Values
	// Record lists the record formats asked for, in URL order; nil when the URL says
	// nothing (the configured default applies then).
	Record []string
	// RecordInterval is the fragment length in seconds (DefaultRecordInterval when absent).
	RecordInterval int
	// AudioOnly is set by record_type=audio.
	AudioOnly bool
	// ReconnectWindow is record_reconnect_window in seconds: a push that starts less
	// than this after the stream's previous push ended continues its broadcast (0:
	// every push is a broadcast of its own). Meaningful only when the URL has the
	// parameter (Query.Has); the configured default applies otherwise.
	ReconnectWindow int
	// Stitch is record_stitch=1: the broadcast's MP4 recordings are stitched into one
	// replay when it ends. Meaningful only when the URL has the parameter.
	Stitch bool
}

// MaxReconnectWindow bounds record_reconnect_window, in seconds.
const MaxReconnectWindow = 3600

// DefaultReconnectWindow is the reconnect window when neither the push URL nor the
// configuration names one, in seconds.
const DefaultReconnectWindow = 60

// Key identifies the stream in the hub: "app/stream_id".
func (p *PushParams) Key() string { return p.App + "/" + p.StreamID }

// secretParams are the query parameters that sign a push: whoever holds them may
// push to the stream until txTime.
var secretParams = []string{"txSecret", "txTime"}

// StreamParam is the push URL's query without its credentials (txSecret, txTime):
// what recordings, API answers and callbacks carry as stream_param.
func (p *PushParams) StreamParam() string {
	q := make(url.Values, len(p.Query))
	for k, v := range p.Query {
		if !slices.Contains(secretParams, k) {
			q[k] = v
		}
	}
	return q.Encode()
}

// ParseRecordFormats parses "mp4|hls|flv" (any non-empty combination, no repeats).
func ParseRecordFormats(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, "|") {
		f = strings.ToLower(strings.TrimSpace(f))
		switch f {
		case FormatMP4, FormatHLS, FormatFLV:
		default:
			return nil, fmt.Errorf("record format %q: must be mp4, hls or flv, joined by |", f)
		}
		if slices.Contains(out, f) {
			return nil, fmt.Errorf("record format %q given twice", f)
		}
		out = append(out, f)
	}
	return out, nil
}
