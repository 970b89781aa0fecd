package spec

import (
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// A request is refused before it is parsed when larger than MaxRequestSize, and the
// reader is not drained past it.
func TestReadRequestBounded(t *testing.T) {
	huge := io.MultiReader(strings.NewReader(`{"input":"`), neverEnding('x'))
	lr := &io.LimitedReader{R: huge, N: 64 << 20}
	if _, err := ReadRequest(lr); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("endless request: %v, want ErrBadRequest, larger than", err)
	}
	if read := 64<<20 - lr.N; read > MaxRequestSize+1 {
		t.Errorf("read %d bytes of an endless request, want at most %d", read, MaxRequestSize+1)
	}
}

type neverEnding byte

func (b neverEnding) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// What livetape-transcoder prints decodes to what it had: durations in nanoseconds,
// every rendition field.
func TestLineRoundTrip(t *testing.T) {
	res := Result{Duration: 10*time.Second + 7*time.Millisecond, Outputs: []Rendition{{Template: "sd", Format: FormatHLS,
		Path: "/x/sd", Width: 640, Height: 360, FrameRate: 29.97, Bitrate: 864000, VideoBitrate: 800000, Codecs: "avc1.64001e,mp4a.40.2"}}}
	b, err := json.Marshal(Line{Result: &res})
	if err != nil {
		t.Fatal(err)
	}
	var back Line
	if err := json.Unmarshal(b, &back); err != nil || back.Result == nil || back.Progress != nil || back.Thumbnail != nil {
		t.Fatalf("%s: %+v %v", b, back, err)
	}
	if got := *back.Result; got.Duration != res.Duration || len(got.Outputs) != 1 || got.Outputs[0] != res.Outputs[0] {
		t.Errorf("round trip: %+v, want %+v", got, res)
	}
	if !strings.Contains(string(b), `"duration":10007000000`) {
		t.Errorf("duration not in nanoseconds: %s", b)
	}
}

func TestRequestValidate(t *testing.T) {
	sd := DefaultTemplates()[0]
	ok := []Request{
		{Op: OpTranscode, Input: "i", Outputs: []Output{{Template: sd, Format: FormatMP4, Path: "a"}, {Template: sd, Format: FormatHLS, Path: "b"}}},
		{Op: OpABR, Input: "i", Dir: "d", Templates: DefaultTemplates()},
		{Op: OpThumbnail, Input: "i", Path: "p.jpg", Thumbnail: ThumbnailOptions{At: time.Second, ShortSide: 180}},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	many := make([]Template, MaxTemplates+1)
	for i := range many {
		many[i] = sd
		many[i].Name = "t" + string(rune('a'+i))
	}
	bad := map[string]Request{
		"no op":          {Input: "i"},
		"no outputs":     {Op: OpTranscode, Input: "i"},
		"webm":           {Op: OpTranscode, Input: "i", Outputs: []Output{{Template: sd, Format: "webm", Path: "a"}}},
		"same path":      {Op: OpTranscode, Input: "i", Outputs: []Output{{Template: sd, Format: FormatMP4, Path: "a"}, {Template: sd, Format: FormatMP4, Path: "./a"}}},
		"abr no dir":     {Op: OpABR, Input: "i", Templates: DefaultTemplates()},
		"abr too many":   {Op: OpABR, Input: "i", Dir: "d", Templates: many},
		"bad template":   {Op: OpABR, Input: "i", Dir: "d", Templates: []Template{{Name: "x"}}},
		"thumb no path":  {Op: OpThumbnail, Input: "i"},
		"thumb negative": {Op: OpThumbnail, Input: "i", Path: "p", Thumbnail: ThumbnailOptions{At: -1}},
	}
	for name, r := range bad {
		if err := r.Validate(); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", name, err)
		}
	}
}
