package live

import (
	"errors"
	"fmt"

	"github.com/livetape/livetape/packager/flv"
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
	if err := flv.ScanAMF0(body, maxAMFDepth); err != nil {
		return c.refuseMessage(t, uint32(len(body)), err.Error())
	}
	return nil
}

func (c *rtmpConn) refuseMessage(t message.TypeID, length uint32, reason string) error {
	c.log.Warn("rtmp message refused, closing the connection", "reason", reason, "type", int(t), "length", length)
	return fmt.Errorf("%w: %s", errMessageRefused, reason)
}
