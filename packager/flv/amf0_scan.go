package flv

import (
	"encoding/binary"
	"fmt"
)

// ScanAMF0 walks the AMF0 values in b without recursion and fails when objects or
// arrays nest deeper than maxDepth, or a strict array announces more elements than b
// has bytes left (a decoder may allocate the announced count before reading any). It stops
// without error at the first value it cannot walk (an unknown marker, a truncated
// value): a decoder reads the same bytes in the same order, so it fails there too
// having gone no deeper, and its error is kept as it was.
//
// Run it on untrusted bytes before a decoder this package does not control: go-amf0,
// under go-rtmp, decodes RTMP commands recursively and without limits.
func ScanAMF0(b []byte, maxDepth int) error {
	// Each open container: an object (keys and values up to the end marker) or a
	// strict array with elements left.
	type container struct {
		object bool
		left   uint32
	}
	var open []container
	i := 0
	have := func(n int) bool { return n >= 0 && len(b)-i >= n }
	for {
		if len(open) == 0 && i == len(b) {
			return nil
		}
		if n := len(open); n > 0 {
			top := &open[n-1]
			if top.object {
				if !have(2) {
					return nil
				}
				keyLen := int(binary.BigEndian.Uint16(b[i:]))
				i += 2
				if keyLen == 0 { // "" then the object-end marker closes the object
					if !have(1) || b[i] != amf0ObjectEnd {
						return nil
					}
					i++
					open = open[:n-1]
					continue
				}
				if !have(keyLen) {
					return nil
				}
				i += keyLen
			} else {
				if top.left == 0 {
					open = open[:n-1]
					continue
				}
				top.left--
			}
		}

		if !have(1) {
			return nil
		}
		marker := b[i]
		i++
		skip := 0
		switch marker {
		case amf0Number:
			skip = 8
		case amf0Boolean:
			skip = 1
		case amf0Null, amf0Undefined, amf0Unsupported:
		case amf0Reference:
			skip = 2
		case amf0Date:
			skip = 10
		case amf0String:
			if !have(2) {
				return nil
			}
			skip = 2 + int(binary.BigEndian.Uint16(b[i:]))
		case amf0LongString, amf0XMLDocument:
			if !have(4) {
				return nil
			}
			skip = 4 + int(binary.BigEndian.Uint32(b[i:]))
		case amf0Object:
			open = append(open, container{object: true})
		case amf0TypedObject:
			if !have(2) {
				return nil
			}
			skip = 2 + int(binary.BigEndian.Uint16(b[i:]))
			open = append(open, container{object: true})
		case amf0ECMAArray:
			skip = 4 // the count, which decoders ignore: the end marker closes it
			open = append(open, container{object: true})
		case amf0StrictArray:
			if !have(4) {
				return nil
			}
			count := binary.BigEndian.Uint32(b[i:])
			skip = 4
			if uint64(count) > uint64(len(b)-i-4) { // every element takes a byte at least
				return fmt.Errorf("AMF0 strict array of %d elements in %d bytes", count, len(b)-i-4)
			}
			open = append(open, container{left: count})
		default:
			return nil
		}
		if len(open) > maxDepth {
			return fmt.Errorf("AMF0 values nested deeper than %d levels", maxDepth)
		}
		if !have(skip) {
			return nil
		}
		i += skip
	}
}
