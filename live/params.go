package live

import (
	"fmt"
	"net/url"
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
	switch t := query.Get("record_type"); t {
	case "", "av":
	case "audio":
		p.AudioOnly = true
	default:
		return nil, fmt.Errorf("record_type %q: only \"audio\" (or \"av\") is known", t)
	}
	return p, nil
}
