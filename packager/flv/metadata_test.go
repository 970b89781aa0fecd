package flv

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

// fixtureMetadata parses the first script tag of a fixture (ffmpeg writes one).
func fixtureMetadata(t *testing.T, name string) *Metadata {
	t.Helper()
	n, m, err := ParseScriptData(fixtureScriptBodies(t, name)[0])
	if err != nil {
		t.Fatal(err)
	}
	if n != OnMetaData || m == nil {
		t.Fatalf("name %q meta %v", n, m)
	}
	return m
}

func TestParseScriptDataFixtures(t *testing.T) {
	m := fixtureMetadata(t, "av.flv")
	if m.Width != 320 || m.Height != 240 || m.FrameRate != 25 || m.VideoCodecID != 7 ||
		m.AudioCodecID != 10 || m.AudioSampleRate != 44100 || !m.Stereo {
		t.Errorf("av.flv: %+v", m)
	}
	if m.Duration < 3.9 || m.Duration > 4.2 {
		t.Errorf("av.flv: duration %v, want ~4 s", m.Duration)
	}
	if k := m.Keyframes; k == nil || !reflect.DeepEqual(k.Times, []float64{0, 1, 2, 3}) || len(k.FilePositions) != 4 {
		t.Errorf("av.flv: keyframes %+v, want times 0..3 with 4 positions", k)
	}
	if v, ok := m.Extra.Get("encoder"); !ok || !strings.HasPrefix(v.(string), "Lavf") {
		t.Errorf("av.flv: encoder %v %v not kept in Extra", v, ok)
	}
	if _, ok := m.Extra.Get("width"); ok {
		t.Error("av.flv: width also in Extra")
	}

	m = fixtureMetadata(t, "video720.flv")
	if m.Width != 1280 || m.Height != 720 || m.FrameRate != 30 || m.AudioCodecID != 0 || m.Stereo {
		t.Errorf("video720.flv: %+v", m)
	}
	m = fixtureMetadata(t, "audio.flv")
	if m.Width != 0 || m.VideoCodecID != 0 || m.AudioCodecID != 10 || m.AudioSampleRate != 44100 {
		t.Errorf("audio.flv: %+v", m)
	}
}

func TestParseScriptDataSetDataFrame(t *testing.T) {
	body := fixtureScriptBodies(t, "av.flv")[0]
	rtmp, _ := AppendAMF0(nil, SetDataFrame)
	rtmp = append(rtmp, body...)
	if got := StripSetDataFrame(rtmp); !bytes.Equal(got, body) {
		t.Fatal("StripSetDataFrame did not remove the prefix")
	}
	if got := StripSetDataFrame(body); !bytes.Equal(got, body) {
		t.Fatal("StripSetDataFrame changed a body without the prefix")
	}
	_, want, _ := ParseScriptData(body)
	name, got, err := ParseScriptData(rtmp)
	if err != nil || name != OnMetaData || !reflect.DeepEqual(got, want) {
		t.Fatalf("@setDataFrame form: %q %+v %v", name, got, err)
	}
}

func TestParseScriptData(t *testing.T) {
	enc := func(v ...any) []byte {
		b, err := AppendAMF0(nil, v...)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	t.Run("object", func(t *testing.T) {
		_, m, err := ParseScriptData(enc(OnMetaData, Object{{"width", 640.0}, {"stereo", false}}))
		if err != nil || m.Width != 640 || len(m.Extra) != 0 {
			t.Fatalf("%+v %v", m, err)
		}
	})
	t.Run("trailing bytes ignored", func(t *testing.T) {
		b := append(enc(OnMetaData, ECMAArray{{"height", 480.0}}), 0, 0, 9, 0xff)
		if _, m, err := ParseScriptData(b); err != nil || m.Height != 480 {
			t.Fatalf("%+v %v", m, err)
		}
	})
	t.Run("other name", func(t *testing.T) {
		name, m, err := ParseScriptData(enc("onCuePoint", Object{{"name", "x"}}))
		if err != nil || name != "onCuePoint" || m != nil {
			t.Fatalf("%q %+v %v", name, m, err)
		}
	})
	t.Run("unexpected types kept in Extra", func(t *testing.T) {
		kf := Object{{"times", []any{0.0, 1.0}}, {"filepositions", []any{13.0}}}
		_, m, err := ParseScriptData(enc(OnMetaData, ECMAArray{
			{"videocodecid", "avc1"}, {"stereo", 1.0}, {"keyframes", kf}, {"framerate", 30.0},
		}))
		if err != nil {
			t.Fatal(err)
		}
		want := Object{{"videocodecid", "avc1"}, {"stereo", 1.0}, {"keyframes", kf}}
		if m.VideoCodecID != 0 || m.Keyframes != nil || m.FrameRate != 30 || !amf0Equal(m.Extra, want) {
			t.Fatalf("%+v", m)
		}
	})
	errs := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "flv: script data is empty"},
		{"only setDataFrame", enc(SetDataFrame), "flv: script data is empty"},
		{"not a name", enc(1.0), "flv: script data starts with a number, want a name string"},
		{"no value", enc(OnMetaData), "flv: onMetaData has no value"},
		{"value not object", enc(OnMetaData, []any{}), "flv: onMetaData value is a strict array, want an object or ECMA array"},
		{"bad amf0", append(enc(OnMetaData), 3, 0), "flv: script data: amf0: property name length truncated at offset 14"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := ParseScriptData(tt.in); err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestMetadataEncode(t *testing.T) {
	m := &Metadata{
		Duration: 1800.5, FileSize: 123456789, Width: 1920, Height: 1080, FrameRate: 30,
		VideoDataRate: 4000, AudioDataRate: 128, AudioSampleRate: 48000,
		VideoCodecID: 7, AudioCodecID: 10, Stereo: true,
		Keyframes: &Keyframes{Times: []float64{0, 2}, FilePositions: []float64{600, 90000}},
		Extra:     Object{{"encoder", "livetape"}, {"width", 1.0}, {"", "dropped"}, {"bad", make(chan int)}},
	}
	b := m.Encode()
	values, err := DecodeAMF0(b)
	if err != nil {
		t.Fatal(err)
	}
	arr, ok := values[1].(ECMAArray)
	if len(values) != 2 || values[0] != OnMetaData || !ok {
		t.Fatalf("encoded %#v, want onMetaData and an ECMA array", values)
	}
	var keys []string
	for _, p := range arr {
		keys = append(keys, p.Key)
	}
	wantKeys := "duration width height videodatarate framerate videocodecid audiodatarate audiosamplerate stereo audiocodecid filesize encoder keyframes"
	if got := strings.Join(keys, " "); got != wantKeys {
		t.Errorf("keys %s\nwant %s", got, wantKeys)
	}
	kf, _ := arr.Get("keyframes")
	wantKF := Object{{"times", []any{0.0, 2.0}}, {"filepositions", []any{600.0, 90000.0}}}
	if !amf0Equal(kf, wantKF) {
		t.Errorf("keyframes %#v", kf)
	}

	_, back, err := ParseScriptData(b)
	if err != nil {
		t.Fatal(err)
	}
	m.Extra = Object{{"encoder", "livetape"}}
	if !reflect.DeepEqual(back, m) {
		t.Errorf("round trip:\ngot  %+v\nwant %+v", back, m)
	}

	// Same shape, other values: same size (writers rely on it to place the index).
	m2 := *m
	m2.Duration, m2.FileSize = 1, 2
	m2.Keyframes = &Keyframes{Times: []float64{0, 0}, FilePositions: []float64{0, 0}}
	if len(m2.Encode()) != len(b) {
		t.Errorf("size changed with values: %d vs %d", len(m2.Encode()), len(b))
	}
}

func TestMetadataEncodeOmitsUnknown(t *testing.T) {
	// Video only: no stereo, no audiocodecid 0 (which would mean PCM).
	b := (&Metadata{Width: 320, Height: 240, VideoCodecID: 7}).Encode()
	values, _ := DecodeAMF0(b)
	want := []any{OnMetaData, ECMAArray{{"width", 320.0}, {"height", 240.0}, {"videocodecid", 7.0}}}
	if !amf0Equal(values, want) {
		t.Errorf("got %#v", values)
	}
	// A string codec id kept in Extra is written back when the field is unset.
	b = (&Metadata{Extra: Object{{"videocodecid", "avc1"}}}).Encode()
	values, _ = DecodeAMF0(b)
	if want := []any{OnMetaData, ECMAArray{{"videocodecid", "avc1"}}}; !amf0Equal(values, want) {
		t.Errorf("got %#v", values)
	}
	// Empty keyframes index: still an object with two empty arrays.
	b = (&Metadata{Keyframes: &Keyframes{}}).Encode()
	values, _ = DecodeAMF0(b)
	want = []any{OnMetaData, ECMAArray{{"keyframes", Object{{"times", []any{}}, {"filepositions", []any{}}}}}}
	if !amf0Equal(values, want) {
		t.Errorf("got %#v", values)
	}
}

// FuzzParseScriptData checks that hostile script data never panics and that Encode is
// a fixed point after one parse: what we write, we read back to the same metadata.
func FuzzParseScriptData(f *testing.F) {
	for _, body := range fixtureScriptBodies(f) {
		f.Add(body)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, m, err := ParseScriptData(b)
		if err != nil || m == nil {
			return
		}
		enc := m.Encode()
		_, m2, err := ParseScriptData(enc)
		if err != nil {
			t.Fatalf("parse encoded: %v", err)
		}
		if enc2 := m2.Encode(); !bytes.Equal(enc, enc2) {
			t.Fatalf("Encode not stable:\n% x\n% x", enc, enc2)
		}
	})
}
