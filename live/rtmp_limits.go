package live

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"
)

// Bounds on what one RTMP connection may send, checked by the patched go-rtmp
// (third_party/go-rtmp, MessageGuard) before a message is buffered or decoded.
const (
	// maxCommandSize bounds command and shared-object messages: connect, publish, play
	// and their kin are a few hundred bytes; nothing legitimate comes near 64 KiB.
	maxCommandSize = 64 << 10
	// maxUnpublishedSize bounds every message of a connection that is not an accepted
	// publisher (before publish succeeds, and players): it has no media to send.
	maxUnpublishedSize = 64 << 10
	// maxDataSize bounds data messages (onMetaData, cue points) of a publisher.
	maxDataSize = 1 << 20
	// maxAMFDepth bounds the nesting of AMF0 objects and arrays: go-amf0 decodes them
	// recursively, and a connect nested 1.5 M deep overflowed the stack. Real metadata
	// nests two or three levels.
	maxAMFDepth = 64
	// maxChunkStreams bounds the chunk streams a connection may use (encoders use 3 to
	// 8), and maxPartialMessages those holding an incomplete message at once (audio,
	// video, data and a command interleaved): each holds a buffer.
	maxChunkStreams    = 64
	maxPartialMessages = 8
)

// errMessageRefused marks a message refused by the guard; the connection is closed.
var errMessageRefused = errors.New("rtmp message refused")

// CheckMessageHeader bounds a message by its chunk header, before go-rtmp buffers any
// of it. It runs on the connection's reader goroutine, like the handlers that set c.pub.
func (c *rtmpConn) CheckMessageHeader(h rtmp.MessageHeader) error {
	switch {
	case h.ChunkStreams > maxChunkStreams:
		return c.refuseMessage(h.TypeID, h.Length, fmt.Sprintf("more than %d chunk streams", maxChunkStreams))
	case h.PartialMessages >= maxPartialMessages:
		return c.refuseMessage(h.TypeID, h.Length, fmt.Sprintf("more than %d incomplete messages at once", maxPartialMessages))
	}
	if limit, what := c.messageLimit(h.TypeID); h.Length > limit {
		return c.refuseMessage(h.TypeID, h.Length, fmt.Sprintf("%d bytes exceed the %d-byte limit of %s", h.Length, limit, what))
	}
	return nil
}

// messageLimit is the largest message of type t the connection may send now, and what
// the limit is named in the log.
func (c *rtmpConn) messageLimit(t message.TypeID) (uint32, string) {
	switch t {
	case message.TypeIDCommandMessageAMF0, message.TypeIDCommandMessageAMF3,
		message.TypeIDSharedObjectMessageAMF0, message.TypeIDSharedObjectMessageAMF3:
		return maxCommandSize, "a command"
	}
	if c.pub == nil {
		return maxUnpublishedSize, "a connection that is not publishing"
	}
	limit := uint32(c.srv.cfg.MaxMessageSize)
	if (t == message.TypeIDDataMessageAMF0 || t == message.TypeIDDataMessageAMF3) && limit > maxDataSize {
		return maxDataSize, "a data message"
	}
	return limit, "live.max_message_size"
}

// CheckMessageBody scans AMF0 command and data messages before go-amf0 decodes them.
func (c *rtmpConn) CheckMessageBody(t message.TypeID, body []byte) error {
	if t != message.TypeIDCommandMessageAMF0 && t != message.TypeIDDataMessageAMF0 {
		return nil // go-rtmp does not decode the AMF3 and shared-object types: it refuses them
	}
	if err := checkAMF0(body, maxAMFDepth); err != nil {
		return c.refuseMessage(t, uint32(len(body)), err.Error())
	}
	return nil
}

func (c *rtmpConn) refuseMessage(t message.TypeID, length uint32, reason string) error {
	c.log.Warn("rtmp message refused, closing the connection", "reason", reason, "type", int(t), "length", length)
	return fmt.Errorf("%w: %s", errMessageRefused, reason)
}

// AMF0 markers (AMF0 spec 2.1).
const (
	amf0Number      = 0x00
	amf0Boolean     = 0x01
	amf0String      = 0x02
	amf0Object      = 0x03
	amf0Null        = 0x05
	amf0Undefined   = 0x06
	amf0Reference   = 0x07
	amf0ECMAArray   = 0x08
	amf0ObjectEnd   = 0x09
	amf0StrictArray = 0x0a
	amf0Date        = 0x0b
	amf0LongString  = 0x0c
	amf0Unsupported = 0x0d
	amf0XMLDocument = 0x0f
	amf0TypedObject = 0x10
)

// checkAMF0 walks the AMF0 values in b without recursion and fails when objects or
// arrays nest deeper than maxDepth, or a strict array announces more elements than b
// has bytes left (go-amf0 allocates the announced count before reading any). It stops
// without error at the first value it cannot walk (an unknown marker, a truncated
// value): go-amf0 reads the same bytes in the same order, so it fails there too
// having gone no deeper, and its error is kept as it was.
func checkAMF0(b []byte, maxDepth int) error {
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
