package flv

import (
	"bytes"
	"fmt"
)

// Script data names.
const (
	// OnMetaData names the script tag that describes an FLV file (E.5).
	OnMetaData = "onMetaData"
	// SetDataFrame prefixes metadata sent over RTMP: the publisher asks the server to
	// store what follows ("onMetaData", values) and replay it to players.
	SetDataFrame = "@setDataFrame"
)

// setDataFramePrefix is SetDataFrame encoded as an AMF0 string.
var setDataFramePrefix = append([]byte{amf0String, 0, byte(len(SetDataFrame))}, SetDataFrame...)

// Metadata is the content of an onMetaData script tag (FLV spec E.5): the well-known
// properties as fields, and every other property in Extra in the order read, so that
// a remuxer can carry metadata it does not understand (encoder, custom tags) through.
type Metadata struct {
	Duration        float64 // seconds
	FileSize        float64 // bytes
	Width, Height   float64 // pixels
	FrameRate       float64 // frames per second
	VideoDataRate   float64 // kilobits per second
	AudioDataRate   float64 // kilobits per second
	AudioSampleRate float64 // Hz
	VideoCodecID    float64 // FLV CodecID, 7 for AVC
	AudioCodecID    float64 // FLV SoundFormat, 10 for AAC
	Stereo          bool
	// Keyframes is the seek index some players (flv.js, VLC) use to seek in a
	// progressive download without scanning the file; nil when absent.
	Keyframes *Keyframes
	// Extra holds the other properties, and well-known ones whose value had an
	// unexpected type (some encoders send videocodecid as the string "avc1").
	Extra Object
}

// Keyframes is the "keyframes" object of onMetaData: for each video keyframe its time
// in seconds and the file offset of its FLV tag. Both slices have the same length.
type Keyframes struct {
	Times         []float64
	FilePositions []float64
}

// StripSetDataFrame returns body without a leading AMF0 "@setDataFrame" string, which
// turns the data message an RTMP publisher sends into the body of an FLV onMetaData
// tag. Any other body is returned as is. The result aliases body.
func StripSetDataFrame(body []byte) []byte {
	return bytes.TrimPrefix(body, setDataFramePrefix)
}

// ParseScriptData parses the body of a script data tag: an AMF0 name followed by its
// value, optionally preceded by "@setDataFrame" (the RTMP form). For onMetaData, whose
// value must be an object or an ECMA array, it returns the parsed Metadata; for any
// other name (onCuePoint, onTextData...) it returns the name and a nil Metadata, so
// callers can pass through script data they do not interpret. Bytes after the value
// are ignored, as some muxers pad script tags.
func ParseScriptData(body []byte) (name string, meta *Metadata, err error) {
	body = StripSetDataFrame(body)
	values, err := decodeAMF0(body, 2)
	if err != nil {
		return "", nil, fmt.Errorf("flv: script data: %w", err)
	}
	if len(values) == 0 {
		return "", nil, fmt.Errorf("flv: script data is empty")
	}
	name, ok := values[0].(string)
	if !ok {
		return "", nil, fmt.Errorf("flv: script data starts with %s, want a name string", amf0TypeName(values[0]))
	}
	if name != OnMetaData {
		return name, nil, nil
	}
	if len(values) < 2 {
		return name, nil, fmt.Errorf("flv: %s has no value", OnMetaData)
	}
	var props []Property
	switch v := values[1].(type) {
	case ECMAArray:
		props = v
	case Object:
		props = v
	default:
		return name, nil, fmt.Errorf("flv: %s value is %s, want an object or ECMA array", OnMetaData, amf0TypeName(v))
	}
	return name, parseMetadata(props), nil
}

func parseMetadata(props []Property) *Metadata {
	m := &Metadata{}
	numbers := m.numberFields()
	for _, p := range props {
		if ptr, known := numbers[p.Key]; known {
			if f, ok := p.Value.(float64); ok {
				*ptr = f
				continue
			}
		}
		switch p.Key {
		case "stereo":
			if b, ok := p.Value.(bool); ok {
				m.Stereo = b
				continue
			}
		case "keyframes":
			if k := parseKeyframes(p.Value); k != nil {
				m.Keyframes = k
				continue
			}
		}
		m.Extra = append(m.Extra, p)
	}
	return m
}

// numberFields maps the well-known numeric property names to m's fields, so parsing
// and encoding share one list of names.
func (m *Metadata) numberFields() map[string]*float64 {
	return map[string]*float64{
		"duration":        &m.Duration,
		"width":           &m.Width,
		"height":          &m.Height,
		"videodatarate":   &m.VideoDataRate,
		"framerate":       &m.FrameRate,
		"videocodecid":    &m.VideoCodecID,
		"audiodatarate":   &m.AudioDataRate,
		"audiosamplerate": &m.AudioSampleRate,
		"audiocodecid":    &m.AudioCodecID,
		"filesize":        &m.FileSize,
	}
}

// parseKeyframes reads {times: [...], filepositions: [...]}; it returns nil unless both
// are arrays of numbers of the same length, so that a malformed index stays in Extra
// rather than misleading a player.
func parseKeyframes(v any) *Keyframes {
	var props []Property
	switch o := v.(type) {
	case Object:
		props = o
	case ECMAArray:
		props = o
	default:
		return nil
	}
	times, ok1 := numbers(Object(props).Get("times"))
	pos, ok2 := numbers(Object(props).Get("filepositions"))
	if !ok1 || !ok2 || len(times) != len(pos) {
		return nil
	}
	return &Keyframes{Times: times, FilePositions: pos}
}

func numbers(v any, present bool) ([]float64, bool) {
	arr, ok := v.([]any)
	if !present || !ok {
		return nil, false
	}
	out := make([]float64, len(arr))
	for i, e := range arr {
		if out[i], ok = e.(float64); !ok {
			return nil, false
		}
	}
	return out, true
}

// Encode returns the body of an FLV script tag: "onMetaData" and an ECMA array of the
// properties. Numeric fields that are zero are left out (zero means unknown, and an
// audiocodecid of 0 would claim PCM audio); stereo is written when it is true or when
// the metadata describes audio. Extra follows, except properties that a field already
// wrote and ones that cannot be encoded (empty name, unsupported Go type): metadata is
// advisory, and dropping an odd property beats failing to write the index. The
// keyframes index, when present, comes last.
//
// The size of the result depends on which fields are non-zero, on Extra and on the
// number of keyframes, not on the values, so a writer can encode once with placeholder
// positions to learn how far the tag shifts the media tags, then again for real.
func (m *Metadata) Encode() []byte {
	var props ECMAArray
	written := map[string]bool{}
	add := func(key string, v any) {
		props = append(props, Property{Key: key, Value: v})
		written[key] = true
	}
	numbers := m.numberFields()
	// ffmpeg's order, which players have long been fed.
	for _, key := range []string{"duration", "width", "height", "videodatarate", "framerate", "videocodecid", "audiodatarate", "audiosamplerate"} {
		if v := *numbers[key]; v != 0 {
			add(key, v)
		}
	}
	if m.Stereo || m.AudioCodecID != 0 || m.AudioSampleRate != 0 || m.AudioDataRate != 0 {
		add("stereo", m.Stereo)
	}
	for _, key := range []string{"audiocodecid", "filesize"} {
		if v := *numbers[key]; v != 0 {
			add(key, v)
		}
	}
	if m.Keyframes != nil {
		written["keyframes"] = true
	}
	for _, p := range m.Extra {
		if written[p.Key] {
			continue
		}
		if _, err := AppendAMF0(nil, Object{p}); err != nil {
			continue
		}
		props = append(props, p)
	}
	if k := m.Keyframes; k != nil {
		props = append(props, Property{Key: "keyframes", Value: Object{
			{Key: "times", Value: k.Times},
			{Key: "filepositions", Value: k.FilePositions},
		}})
	}
	b, err := AppendAMF0(nil, OnMetaData, props)
	if err != nil {
		// Every property was checked above; this is a bug, not bad input.
		panic(fmt.Sprintf("flv: encoding metadata: %v", err))
	}
	return b
}

// amf0TypeName names the AMF0 type of a decoded value, for error messages.
func amf0TypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case float64:
		return "a number"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case Object:
		return "an object"
	case ECMAArray:
		return "an ECMA array"
	case []any:
		return "a strict array"
	case Date:
		return "a date"
	case Undefined:
		return "undefined"
	}
	return fmt.Sprintf("%T", v)
}
