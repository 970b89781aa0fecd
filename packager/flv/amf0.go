package flv

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"
)

// AMF0 (Action Message Format version 0, Adobe 2007) is the encoding of FLV script
// data tags and of RTMP data messages such as @setDataFrame. Only the types that occur
// in script data are supported; references, typed objects, XML documents, record sets
// and the AVM+ switch are rejected, since no FLV muxer we read or write emits them.
//
// Decoded values map to Go as follows:
//
//	number (0)        float64
//	boolean (1)       bool
//	string (2)        string
//	object (3)        Object
//	null (5)          nil
//	undefined (6)     Undefined
//	ECMA array (8)    ECMAArray
//	strict array (10) []any
//	date (11)         Date
//	long string (12)  string
//
// Objects keep their properties in wire order (and any duplicate keys), so metadata
// read from one file and written to another does not get reshuffled.

// AMF0 type markers (AMF0 spec, 2.1).
const (
	amf0Number      = 0x00
	amf0Boolean     = 0x01
	amf0String      = 0x02
	amf0Object      = 0x03
	amf0Null        = 0x05
	amf0Undefined   = 0x06
	amf0ECMAArray   = 0x08
	amf0ObjectEnd   = 0x09
	amf0StrictArray = 0x0a
	amf0Date        = 0x0b
	amf0LongString  = 0x0c
	// Markers this package does not decode but ScanAMF0 walks past.
	amf0Reference   = 0x07
	amf0Unsupported = 0x0d
	amf0XMLDocument = 0x0f
	amf0TypedObject = 0x10
)

// MaxAMF0Depth bounds the nesting of objects and arrays, both when decoding (so hostile
// script data cannot exhaust the stack) and when encoding (so a self-referencing []any
// fails instead of recursing forever, and whatever we write we can read back).
// Real metadata nests two levels (onMetaData -> keyframes -> times).
const MaxAMF0Depth = 64

// Property is one key/value pair of an AMF0 object or ECMA array.
type Property struct {
	Key   string
	Value any
}

// Object is an AMF0 anonymous object: an ordered list of properties.
type Object []Property

// Get returns the value of the first property named key.
func (o Object) Get(key string) (any, bool) {
	for _, p := range o {
		if p.Key == key {
			return p.Value, true
		}
	}
	return nil, false
}

// ECMAArray is an AMF0 ECMA (associative) array. On the wire it differs from an object
// only by a leading count; it is a distinct type so that re-encoding keeps the marker
// (FLV players expect onMetaData to be an ECMA array).
type ECMAArray []Property

// Get returns the value of the first property named key.
func (a ECMAArray) Get(key string) (any, bool) { return Object(a).Get(key) }

// Undefined is the AMF0 undefined value, kept distinct from null (nil) so that it
// survives a decode/encode round trip.
type Undefined struct{}

// Date is an AMF0 date: milliseconds since the Unix epoch (UTC) and a time-zone field
// that the spec reserves and says should be 0. It is kept as the raw float rather than a
// time.Time so that every value, including fractions and NaN, round-trips exactly.
type Date struct {
	Millis   float64
	TimeZone int16
}

// Time converts d to a time.Time (UTC, millisecond precision).
func (d Date) Time() time.Time { return time.UnixMilli(int64(d.Millis)).UTC() }

// DecodeAMF0 decodes every AMF0 value in b. It fails on the first malformed value, with
// an error starting "amf0: " that says what was wrong and at which offset of b.
//
// Lengths and counts are checked against the bytes remaining before anything is
// allocated, and nesting is limited to MaxAMF0Depth, so untrusted input (a publisher's
// script data) costs memory linear in len(b): in the worst case, a buffer of nulls in a
// strict array, some 16 bytes of interface per input byte plus slice growth. An ECMA array whose end marker
// is missing at the very end of b is accepted, as some encoders omit it.
func DecodeAMF0(b []byte) ([]any, error) {
	return decodeAMF0(b, -1)
}

// decodeAMF0 decodes up to max values from b (all of them if max < 0); bytes after the
// last requested value are not examined.
func decodeAMF0(b []byte, max int) ([]any, error) {
	d := amf0Decoder{b: b}
	var values []any
	for d.off < len(d.b) && (max < 0 || len(values) < max) {
		v, err := d.value(0)
		if err != nil {
			return values, err
		}
		values = append(values, v)
	}
	return values, nil
}

type amf0Decoder struct {
	b   []byte
	off int
}

func (d *amf0Decoder) errorf(off int, format string, args ...any) error {
	return fmt.Errorf("amf0: %s at offset %d", fmt.Sprintf(format, args...), off)
}

// need checks that n more bytes are available; what names the field being read.
func (d *amf0Decoder) need(n int, what string) error {
	if n > len(d.b)-d.off {
		return fmt.Errorf("amf0: %s truncated at offset %d (need %d bytes, have %d): %w",
			what, d.off, n, len(d.b)-d.off, io.ErrUnexpectedEOF)
	}
	return nil
}

func (d *amf0Decoder) u16(what string) (int, error) {
	if err := d.need(2, what); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint16(d.b[d.off:])
	d.off += 2
	return int(n), nil
}

func (d *amf0Decoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	n := binary.BigEndian.Uint32(d.b[d.off:])
	d.off += 4
	return n, nil
}

func (d *amf0Decoder) f64(what string) (float64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	f := math.Float64frombits(binary.BigEndian.Uint64(d.b[d.off:]))
	d.off += 8
	return f, nil
}

// str reads n bytes as a string, after checking that they are there.
func (d *amf0Decoder) str(n uint64, what string) (string, error) {
	if n > uint64(len(d.b)-d.off) {
		return "", fmt.Errorf("amf0: %s of %d bytes at offset %d overruns the data (%d bytes left): %w",
			what, n, d.off, len(d.b)-d.off, io.ErrUnexpectedEOF)
	}
	s := string(d.b[d.off : d.off+int(n)])
	d.off += int(n)
	return s, nil
}

// value decodes one value; depth is the number of containers enclosing it.
func (d *amf0Decoder) value(depth int) (any, error) {
	if err := d.need(1, "type marker"); err != nil {
		return nil, err
	}
	start := d.off
	marker := d.b[d.off]
	d.off++
	switch marker {
	case amf0Number:
		return d.f64("number")
	case amf0Boolean:
		if err := d.need(1, "boolean"); err != nil {
			return nil, err
		}
		d.off++
		return d.b[d.off-1] != 0, nil
	case amf0String:
		n, err := d.u16("string length")
		if err != nil {
			return nil, err
		}
		return d.str(uint64(n), "string")
	case amf0LongString:
		n, err := d.u32("long string length")
		if err != nil {
			return nil, err
		}
		return d.str(uint64(n), "long string")
	case amf0Null:
		return nil, nil
	case amf0Undefined:
		return Undefined{}, nil
	case amf0Date:
		ms, err := d.f64("date")
		if err != nil {
			return nil, err
		}
		tz, err := d.u16("date time zone")
		if err != nil {
			return nil, err
		}
		return Date{Millis: ms, TimeZone: int16(tz)}, nil
	case amf0Object, amf0ECMAArray, amf0StrictArray:
		if depth >= MaxAMF0Depth {
			return nil, d.errorf(start, "nesting deeper than %d levels", MaxAMF0Depth)
		}
		switch marker {
		case amf0Object:
			props, err := d.properties(depth+1, false)
			return Object(props), err
		case amf0ECMAArray:
			// The count is only a hint (encoders often write 0); the end marker
			// terminates the array, so the count is read and ignored.
			if _, err := d.u32("ECMA array count"); err != nil {
				return nil, err
			}
			props, err := d.properties(depth+1, true)
			return ECMAArray(props), err
		default:
			return d.strictArray(depth + 1)
		}
	case amf0ObjectEnd:
		return nil, d.errorf(start, "object end marker outside an object")
	}
	return nil, d.errorf(start, "unsupported type marker 0x%02x", marker)
}

// properties decodes object properties up to and including the empty-key object end.
// With lenient set (ECMA arrays) the end of the data is accepted in place of the end
// marker.
func (d *amf0Decoder) properties(depth int, lenient bool) ([]Property, error) {
	props := []Property{}
	for {
		if lenient && d.off == len(d.b) {
			return props, nil
		}
		keyOff := d.off
		n, err := d.u16("property name length")
		if err != nil {
			return nil, err
		}
		if n == 0 {
			if err := d.need(1, "object end marker"); err != nil {
				return nil, err
			}
			if d.b[d.off] != amf0ObjectEnd {
				return nil, d.errorf(keyOff, "empty property name not followed by object end marker (got 0x%02x)", d.b[d.off])
			}
			d.off++
			return props, nil
		}
		key, err := d.str(uint64(n), "property name")
		if err != nil {
			return nil, err
		}
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		props = append(props, Property{Key: key, Value: v})
	}
}

func (d *amf0Decoder) strictArray(depth int) ([]any, error) {
	countOff := d.off
	count, err := d.u32("strict array count")
	if err != nil {
		return nil, err
	}
	// Every value takes at least its marker byte, so a count larger than what is left
	// is a lie; reject it before trusting it with an allocation. Even then, only a
	// little is preallocated: nested arrays could each claim most of the buffer.
	if uint64(count) > uint64(len(d.b)-d.off) {
		return nil, d.errorf(countOff, "strict array count %d exceeds the %d bytes left", count, len(d.b)-d.off)
	}
	arr := make([]any, 0, min(int(count), 16))
	for range count {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	return arr, nil
}

// AppendAMF0 appends the AMF0 encoding of each value to dst. Besides the Go types that
// DecodeAMF0 produces, it accepts every integer and float type as a number and
// []float64 as a strict array (convenient for keyframe indexes); integers beyond 2^53
// lose precision, as AMF0 numbers are doubles. Strings longer than 65535 bytes are
// written as long strings. On error (an unsupported type, an empty or over-long
// property name, nesting deeper than MaxAMF0Depth) dst is returned unchanged.
func AppendAMF0(dst []byte, v ...any) ([]byte, error) {
	orig := len(dst)
	var err error
	for _, x := range v {
		if dst, err = appendValue(dst, x, 0); err != nil {
			return dst[:orig], err
		}
	}
	return dst, nil
}

func appendNumber(dst []byte, f float64) []byte {
	dst = append(dst, amf0Number)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

func appendValue(dst []byte, v any, depth int) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, amf0Null), nil
	case Undefined:
		return append(dst, amf0Undefined), nil
	case bool:
		b := byte(0)
		if x {
			b = 1
		}
		return append(dst, amf0Boolean, b), nil
	case float64:
		return appendNumber(dst, x), nil
	case float32:
		return appendNumber(dst, float64(x)), nil
	case int:
		return appendNumber(dst, float64(x)), nil
	case int8:
		return appendNumber(dst, float64(x)), nil
	case int16:
		return appendNumber(dst, float64(x)), nil
	case int32:
		return appendNumber(dst, float64(x)), nil
	case int64:
		return appendNumber(dst, float64(x)), nil
	case uint:
		return appendNumber(dst, float64(x)), nil
	case uint8:
		return appendNumber(dst, float64(x)), nil
	case uint16:
		return appendNumber(dst, float64(x)), nil
	case uint32:
		return appendNumber(dst, float64(x)), nil
	case uint64:
		return appendNumber(dst, float64(x)), nil
	case string:
		if len(x) <= math.MaxUint16 {
			dst = append(dst, amf0String)
			dst = binary.BigEndian.AppendUint16(dst, uint16(len(x)))
		} else {
			if uint64(len(x)) > math.MaxUint32 {
				return dst, fmt.Errorf("amf0: string of %d bytes too long to encode", len(x))
			}
			dst = append(dst, amf0LongString)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
		}
		return append(dst, x...), nil
	case Date:
		dst = append(dst, amf0Date)
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(x.Millis))
		return binary.BigEndian.AppendUint16(dst, uint16(x.TimeZone)), nil
	case Object:
		if depth >= MaxAMF0Depth {
			return dst, fmt.Errorf("amf0: cannot encode nesting deeper than %d levels", MaxAMF0Depth)
		}
		return appendProperties(append(dst, amf0Object), x, depth+1)
	case ECMAArray:
		if depth >= MaxAMF0Depth {
			return dst, fmt.Errorf("amf0: cannot encode nesting deeper than %d levels", MaxAMF0Depth)
		}
		if uint64(len(x)) > math.MaxUint32 {
			return dst, fmt.Errorf("amf0: ECMA array of %d properties too long to encode", len(x))
		}
		dst = append(dst, amf0ECMAArray)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
		return appendProperties(dst, x, depth+1)
	case []any:
		if depth >= MaxAMF0Depth {
			return dst, fmt.Errorf("amf0: cannot encode nesting deeper than %d levels", MaxAMF0Depth)
		}
		if uint64(len(x)) > math.MaxUint32 {
			return dst, fmt.Errorf("amf0: strict array of %d values too long to encode", len(x))
		}
		dst = append(dst, amf0StrictArray)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
		var err error
		for _, e := range x {
			if dst, err = appendValue(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case []float64:
		// Keyframe indexes are []float64; encode them as the strict array they are.
		vals := make([]any, len(x))
		for i, f := range x {
			vals[i] = f
		}
		return appendValue(dst, vals, depth)
	}
	return dst, fmt.Errorf("amf0: cannot encode a value of type %T", v)
}

// appendProperties writes props and the object end; depth is that of the values.
func appendProperties(dst []byte, props []Property, depth int) ([]byte, error) {
	var err error
	for _, p := range props {
		// An empty name is how the wire marks the end of an object, so it cannot be
		// a property name.
		if p.Key == "" {
			return dst, fmt.Errorf("amf0: cannot encode an empty property name")
		}
		if len(p.Key) > math.MaxUint16 {
			return dst, fmt.Errorf("amf0: property name of %d bytes too long to encode", len(p.Key))
		}
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(p.Key)))
		dst = append(dst, p.Key...)
		if dst, err = appendValue(dst, p.Value, depth); err != nil {
			return dst, err
		}
	}
	return append(dst, 0, 0, amf0ObjectEnd), nil
}
