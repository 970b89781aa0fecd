package flv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/livetape/livetape/media"
)

// amf0Equal compares decoded AMF0 values. Floats are compared by bits, so NaN equals
// the same NaN (reflect.DeepEqual would call every NaN unequal), and empty containers
// equal nil ones.
func amf0Equal(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case Date:
		y, ok := b.(Date)
		return ok && math.Float64bits(x.Millis) == math.Float64bits(y.Millis) && x.TimeZone == y.TimeZone
	case Object:
		y, ok := b.(Object)
		return ok && propsEqual(x, y)
	case ECMAArray:
		y, ok := b.(ECMAArray)
		return ok && propsEqual(x, y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !amf0Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	return a == b
}

func propsEqual(a, b []Property) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || !amf0Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func valuesEqual(a, b []any) bool { return amf0Equal(a, b) }

// hexb builds a byte slice from pieces: strings are taken literally, ints as one byte.
func hexb(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch x := p.(type) {
		case string:
			b = append(b, x...)
		case int:
			b = append(b, byte(x))
		case []byte:
			b = append(b, x...)
		default:
			panic(fmt.Sprintf("hexb: %T", p))
		}
	}
	return b
}

func TestDecodeAMF0(t *testing.T) {
	num := func(f float64) []byte {
		b, _ := AppendAMF0(nil, f)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want []any
	}{
		{"empty", nil, nil},
		{"number", hexb(0, 0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18), []any{math.Pi}},
		{"booleans", hexb(1, 1, 1, 0, 1, 7), []any{true, false, true}},
		{"string", hexb(2, 0, 5, "hello"), []any{"hello"}},
		{"empty string", hexb(2, 0, 0), []any{""}},
		{"long string", hexb(12, 0, 0, 0, 3, "abc"), []any{"abc"}},
		{"null undefined", hexb(5, 6), []any{nil, Undefined{}}},
		{"date", hexb(11, num(1.5e12)[1:], 0xff, 0xfe), []any{Date{Millis: 1.5e12, TimeZone: -2}}},
		{"object", hexb(3, 0, 1, "a", num(1), 0, 1, "b", 2, 0, 1, "x", 0, 0, 9),
			[]any{Object{{"a", 1.0}, {"b", "x"}}}},
		{"empty object", hexb(3, 0, 0, 9), []any{Object{}}},
		{"object duplicate keys kept", hexb(3, 0, 1, "a", 5, 0, 1, "a", 1, 1, 0, 0, 9),
			[]any{Object{{"a", nil}, {"a", true}}}},
		{"ecma array", hexb(8, 0, 0, 0, 1, 0, 5, "width", num(320), 0, 0, 9),
			[]any{ECMAArray{{"width", 320.0}}}},
		// Encoders write wrong counts; the end marker is what ends the array.
		{"ecma array count ignored", hexb(8, 0, 0, 0, 0, 0, 1, "a", 5, 0, 1, "b", 5, 0, 0, 9),
			[]any{ECMAArray{{"a", nil}, {"b", nil}}}},
		{"ecma array end missing at eof", hexb(8, 0, 0, 0, 1, 0, 1, "a", 1, 1),
			[]any{ECMAArray{{"a", true}}}},
		{"strict array", hexb(10, 0, 0, 0, 3, num(1), 5, 2, 0, 1, "s"),
			[]any{[]any{1.0, nil, "s"}}},
		{"empty strict array", hexb(10, 0, 0, 0, 0), []any{[]any{}}},
		{"nested", hexb(2, 0, 10, "onMetaData", 8, 0, 0, 0, 1,
			0, 9, "keyframes", 3,
			0, 5, "times", 10, 0, 0, 0, 2, num(0), num(1),
			0, 0, 9, 0, 0, 9),
			[]any{"onMetaData", ECMAArray{{"keyframes", Object{{"times", []any{0.0, 1.0}}}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeAMF0(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !valuesEqual(got, tt.want) {
				t.Fatalf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestDecodeAMF0Errors(t *testing.T) {
	deep := func(n int) []byte {
		var b []byte
		for range n {
			b = append(b, 10, 0, 0, 0, 1)
		}
		return append(b, 5)
	}
	tests := []struct {
		name string
		in   []byte
		want string // substring of the error
		eof  bool   // whether the error wraps io.ErrUnexpectedEOF
	}{
		{"number truncated", hexb(0, 1, 2, 3), "number truncated at offset 1", true},
		{"boolean truncated", hexb(1), "boolean truncated at offset 1", true},
		{"string length truncated", hexb(2, 0), "string length truncated at offset 1", true},
		{"string overruns", hexb(5, 2, 0, 10, "abc"), "string of 10 bytes at offset 4 overruns", true},
		{"long string overruns", hexb(12, 0xff, 0xff, 0xff, 0xff, "abc"), "long string of 4294967295 bytes at offset 5", true},
		{"date truncated", hexb(11, 0, 0, 0, 0, 0, 0, 0, 0, 0), "date time zone truncated at offset 9", true},
		{"object without end", hexb(3, 0, 1, "a", 5), "property name length truncated at offset 5", true},
		{"object end truncated", hexb(3, 0, 0), "object end marker truncated at offset 3", true},
		{"empty key without end", hexb(3, 0, 0, 5), "empty property name not followed by object end marker (got 0x05) at offset 1", false},
		{"property name overruns", hexb(3, 0, 9, "ab"), "property name of 9 bytes at offset 3", true},
		{"object value missing", hexb(3, 0, 1, "a"), "type marker truncated at offset 4", true},
		{"ecma count truncated", hexb(8, 0, 0), "ECMA array count truncated at offset 1", true},
		{"ecma half key at eof", hexb(8, 0, 0, 0, 0, 0), "property name length truncated at offset 5", true},
		{"strict array count lies", hexb(10, 0xff, 0xff, 0xff, 0xff, 5), "strict array count 4294967295 exceeds the 1 bytes left at offset 1", false},
		{"strict array element bad", hexb(10, 0, 0, 0, 2, 5, 0x42), "unsupported type marker 0x42 at offset 6", false},
		{"object end at top level", hexb(5, 9), "object end marker outside an object at offset 1", false},
		{"reference", hexb(7, 0, 0), "unsupported type marker 0x07 at offset 0", false},
		{"typed object", hexb(16, 0, 1, "C", 0, 0, 9), "unsupported type marker 0x10 at offset 0", false},
		{"movieclip", hexb(4), "unsupported type marker 0x04 at offset 0", false},
		{"too deep", deep(MaxAMF0Depth + 1), fmt.Sprintf("nesting deeper than 64 levels at offset %d", 5*MaxAMF0Depth), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeAMF0(tt.in)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "amf0: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want it to contain %q", msg, tt.want)
			}
			if got := errors.Is(err, io.ErrUnexpectedEOF); got != tt.eof {
				t.Errorf("errors.Is(err, io.ErrUnexpectedEOF) = %v, want %v", got, tt.eof)
			}
		})
	}
	// Exactly MaxAMF0Depth levels is fine.
	if _, err := DecodeAMF0(deep(MaxAMF0Depth)); err != nil {
		t.Errorf("depth %d: %v", MaxAMF0Depth, err)
	}
}

// TestDecodeAMF0Amplification checks that counts claiming most of the buffer at every
// nesting level do not each get an allocation of that size: memory must stay linear
// in the input. A million nulls legitimately cost ~16 MB of interface slots plus the
// slice growth before them (~85 bytes per input byte in all); preallocating by count at
// each of the 64 levels would cost a gigabyte.
func TestDecodeAMF0Amplification(t *testing.T) {
	const nulls = 1 << 20
	var b []byte
	for i := range MaxAMF0Depth {
		b = append(b, amf0StrictArray)
		b = binary.BigEndian.AppendUint32(b, uint32(nulls+5*(MaxAMF0Depth-1-i)))
	}
	b = append(b, bytes.Repeat([]byte{amf0Null}, nulls)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := DecodeAMF0(b)
	runtime.ReadMemStats(&after)
	if err == nil {
		t.Fatal("no error for arrays whose counts exceed their content")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 128*uint64(len(b)) {
		t.Errorf("decoding %d bytes allocated %d bytes", len(b), alloc)
	}
}

func TestAppendAMF0(t *testing.T) {
	tests := []struct {
		name string
		in   []any
		want []byte
	}{
		{"null undefined bool", []any{nil, Undefined{}, true, false}, hexb(5, 6, 1, 1, 1, 0)},
		{"int as number", []any{int(1)}, hexb(0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0)},
		{"uint32 as number", []any{uint32(2)}, hexb(0, 0x40, 0, 0, 0, 0, 0, 0, 0)},
		{"string", []any{"ab"}, hexb(2, 0, 2, "ab")},
		{"date", []any{Date{TimeZone: 1}}, hexb(11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)},
		{"object", []any{Object{{"k", nil}}}, hexb(3, 0, 1, "k", 5, 0, 0, 9)},
		{"ecma array counts properties", []any{ECMAArray{{"k", nil}, {"l", nil}}},
			hexb(8, 0, 0, 0, 2, 0, 1, "k", 5, 0, 1, "l", 5, 0, 0, 9)},
		{"strict array", []any{[]any{nil, "a"}}, hexb(10, 0, 0, 0, 2, 5, 2, 0, 1, "a")},
		{"float64 slice", []any{[]float64{1}}, hexb(10, 0, 0, 0, 1, 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := AppendAMF0([]byte("prefix"), tt.in...)
			if err != nil {
				t.Fatal(err)
			}
			if want := append([]byte("prefix"), tt.want...); !bytes.Equal(got, want) {
				t.Fatalf("got % x\nwant % x", got, want)
			}
		})
	}

	long := strings.Repeat("x", 70000)
	b, err := AppendAMF0(nil, long)
	if err != nil || b[0] != amf0LongString || len(b) != 1+4+len(long) {
		t.Errorf("long string: marker %#x len %d err %v", b[0], len(b), err)
	}
}

func TestAppendAMF0Errors(t *testing.T) {
	cyclic := []any{nil}
	cyclic[0] = cyclic
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"unsupported type", struct{}{}, "amf0: cannot encode a value of type struct {}"},
		{"map", map[string]any{}, "amf0: cannot encode a value of type map[string]interface {}"},
		{"empty key", Object{{"", 1.0}}, "amf0: cannot encode an empty property name"},
		{"nested empty key", ECMAArray{{"a", Object{{"", nil}}}}, "amf0: cannot encode an empty property name"},
		{"long key", Object{{strings.Repeat("k", 70000), nil}}, "amf0: property name of 70000 bytes too long"},
		{"cyclic", cyclic, "amf0: cannot encode nesting deeper than 64 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := AppendAMF0(dst, 1.0, tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if string(got) != "keep" {
				t.Errorf("dst = %q after error, want it unchanged", got)
			}
		})
	}
}

func TestAMF0RoundTrip(t *testing.T) {
	values := []any{
		"onMetaData",
		ECMAArray{
			{"duration", 4.08},
			{"width", 320.0},
			{"stereo", true},
			{"encoder", "Lavf59.27.100"},
			{"nan", math.NaN()},
			{"inf", math.Inf(-1)},
			{"negzero", math.Copysign(0, -1)},
			{"none", nil},
			{"undef", Undefined{}},
			{"when", Date{Millis: 1700000000123, TimeZone: 0}},
			{"long", strings.Repeat("ü", 40000)},
			{"keyframes", Object{
				{"times", []any{0.0, 1.0, 2.0}},
				{"filepositions", []any{13.0, 4000.0, 9000.0}},
			}},
			{"mixed", []any{Object{}, ECMAArray{}, []any{}, []any{[]any{"deep"}}}},
		},
		false,
	}
	b, err := AppendAMF0(nil, values...)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAMF0(b)
	if err != nil {
		t.Fatal(err)
	}
	if !valuesEqual(got, values) {
		t.Fatalf("round trip:\ngot  %#v\nwant %#v", got, values)
	}
	again, err := AppendAMF0(nil, got...)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("re-encoding differs (err %v)", err)
	}
}

func TestDateTime(t *testing.T) {
	d := Date{Millis: 1700000000123}
	if got := d.Time().Format("2006-01-02T15:04:05.000Z07:00"); got != "2023-11-14T22:13:20.123Z" {
		t.Errorf("Time() = %s", got)
	}
}

// fixtureScriptBodies returns the body of every script data tag in the named FLV
// fixtures, by default all of them.
func fixtureScriptBodies(tb testing.TB, names ...string) [][]byte {
	tb.Helper()
	if len(names) == 0 {
		names = []string{"av.flv", "video720.flv", "audio.flv"}
	}
	var bodies [][]byte
	for _, name := range names {
		f, err := os.Open("../../testdata/" + name)
		if err != nil {
			tb.Fatal(err)
		}
		r, err := NewReader(f)
		if err != nil {
			tb.Fatal(err)
		}
		for {
			p, err := r.ReadPacket()
			if err == io.EOF {
				break
			}
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			if p.Kind == media.KindData {
				bodies = append(bodies, p.Body())
			}
		}
		f.Close()
	}
	if len(bodies) == 0 {
		tb.Fatal("no script data in the fixtures")
	}
	return bodies
}

func FuzzDecodeAMF0(f *testing.F) {
	for _, body := range fixtureScriptBodies(f) {
		f.Add(body)
		// The RTMP form of the same metadata.
		withSet, _ := AppendAMF0(nil, "@setDataFrame")
		f.Add(append(withSet, body...))
	}
	f.Add(hexb(10, 0, 0, 0, 2, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6))
	f.Add(hexb(8, 0, 0, 0, 1, 0, 1, "a", 12, 0, 0, 0, 1, "z"))
	f.Fuzz(func(t *testing.T, b []byte) {
		values, err := DecodeAMF0(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "amf0: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		// Whatever decodes must encode, and decode back to the same values.
		enc, err := AppendAMF0(nil, values...)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodeAMF0(enc)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if !valuesEqual(values, again) {
			t.Fatalf("round trip differs:\nfirst  %#v\nsecond %#v", values, again)
		}
	})
}
