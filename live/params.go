package live

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/livetape/livetape/stream"
)

// SplitName separates "name?query" as encoders send it in the publishing name or tcUrl.
func SplitName(s string) (name, query string) {
	name, query, _ = strings.Cut(s, "?")
	return name, query
}

// ParsePush validates a push: the app, the stream id and the record parameters. The
// query may come from the publishing name and from the tcUrl; the caller merges them.
func ParsePush(app, streamID string, query url.Values) (*stream.PushParams, error) {
	if err := stream.ValidStreamID(app); err != nil {
		return nil, fmt.Errorf("bad app name: %w", err)
	}
	if err := stream.ValidStreamID(streamID); err != nil {
		return nil, err
	}
	p := &stream.PushParams{App: app, StreamID: streamID, Query: query, RecordInterval: stream.DefaultRecordInterval}
	if query.Has("record") {
		formats, err := stream.ParseRecordFormats(query.Get("record"))
		if err != nil {
			return nil, err
		}
		p.Record = formats
	}
	if v := query.Get("record_interval"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > stream.MaxRecordInterval {
			return nil, fmt.Errorf("record_interval %q: must be an integer number of seconds in 1..%d", v, stream.MaxRecordInterval)
		}
		p.RecordInterval = n
	}
	if query.Has("record_reconnect_window") {
		v := query.Get("record_reconnect_window")
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > stream.MaxReconnectWindow {
			return nil, fmt.Errorf("record_reconnect_window %.20q: must be an integer number of seconds in 0..%d (0: no reconnect window)", v, stream.MaxReconnectWindow)
		}
		p.ReconnectWindow = n
	}
	if query.Has("record_stitch") {
		switch v := query.Get("record_stitch"); v {
		case "1":
			p.Stitch = true
		case "0":
		default:
			return nil, fmt.Errorf("record_stitch %.20q: want 1 (stitch the broadcast's MP4 recordings when it ends) or 0", v)
		}
	}
	switch t := query.Get("record_type"); t {
	case "", "av":
	case "audio":
		p.AudioOnly = true
	default:
		return nil, fmt.Errorf("record_type %q: only \"audio\" (or \"av\") is known", t)
	}
	return p, nil
}

// DefaultTranscodeTemplates are the template names a push may ask for when the
// configuration names none (the transcoder's defaults).
var DefaultTranscodeTemplates = []string{"sd", "hd", "uhd"}

// maxTranscodeTemplates bounds transcode= as jobs.MaxTranscodeTemplates does.
const maxTranscodeTemplates = 8

// CheckTranscodeParams validates the transcoding a push asks for: transcode= is a
// '|'-separated list of known template names (each recording is transcoded to them
// once stored), abr= is 1 (an HLS ABR set of those templates, or of the defaults) or 0.
func CheckTranscodeParams(query url.Values, known []string) error {
	if len(known) == 0 {
		known = DefaultTranscodeTemplates
	}
	if query.Has("transcode") {
		names := strings.Split(query.Get("transcode"), "|")
		if len(names) > maxTranscodeTemplates {
			return fmt.Errorf("transcode: %d templates, at most %d", len(names), maxTranscodeTemplates)
		}
		for _, name := range names {
			if !slices.Contains(known, name) {
				return fmt.Errorf("transcode %.40q: unknown template (known: %s)", name, strings.Join(known, ", "))
			}
		}
	}
	switch v := query.Get("abr"); v {
	case "", "0", "1":
	default:
		return fmt.Errorf("abr %.20q: want 1 (build an HLS ABR set) or 0", v)
	}
	return nil
}
