// Package media is the packet model shared by every livetape package: an FLV-style
// packet (audio, video or script data with a millisecond timestamp) and the codec
// configurations carried by sequence headers.
package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
)

// Kind is the FLV tag type of a packet.
type Kind uint8

// Packet kinds, numbered as FLV tag types (E.4.1).
const (
	KindAudio Kind = 8
	KindVideo Kind = 9
	KindData  Kind = 18
)

func (k Kind) String() string {
	switch k {
	case KindAudio:
		return "audio"
	case KindVideo:
		return "video"
	case KindData:
		return "data"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// FLV codec ids this package understands.
const (
	VideoCodecAVC  = 7  // VideoTagHeader CodecID
	AudioFormatAAC = 10 // AudioTagHeader SoundFormat
)

// TagHeaderSize and PrevSizeLen frame an FLV tag: 11 bytes of header before the body,
// 4 bytes of PreviousTagSize after it.
const (
	TagHeaderSize = 11
	PrevSizeLen   = 4
)

// MaxBodySize is the largest tag body FLV can describe (DataSize is 24 bits).
const MaxBodySize = 1<<24 - 1

// ErrBodyTooLarge is returned for a body that does not fit an FLV tag.
var ErrBodyTooLarge = errors.New("media: packet body larger than 16 MiB")

// Packet is one audio, video or data message. It is immutable once built and shared
// by every reader of a stream: the FLV tag is serialized once, when the packet is made,
// and every HTTP-FLV viewer and recorder writes the same bytes.
type Packet struct {
	Kind      Kind
	Timestamp uint32 // decode time in milliseconds (FLV/RTMP timestamp)
	// Keyframe is set on video key frames; audio and data packets are always
	// keyframes (any of them can start playback).
	Keyframe bool
	// SequenceHeader is set on AVC decoder configuration records and AAC
	// AudioSpecificConfigs: codec setup, not media.
	SequenceHeader bool
	// CompositionTime is PTS-DTS in milliseconds (AVC only).
	CompositionTime int32
	// Tag is the whole FLV tag: header, body and PreviousTagSize.
	Tag []byte

	// rtmp caches the packet's RTMP chunks for RTMP play, made by the first viewer
	// that needs them and written by every other (see RTMPChunks).
	rtmp atomic.Pointer[RTMPChunks]
}

// NewPacket builds a packet from an FLV tag body (the payload of an RTMP audio, video or
// data message), copying body into the packet's own serialized tag.
func NewPacket(kind Kind, timestamp uint32, body []byte) (*Packet, error) {
	if len(body) > MaxBodySize {
		return nil, ErrBodyTooLarge
	}
	tag := make([]byte, TagHeaderSize+len(body)+PrevSizeLen)
	copy(tag[TagHeaderSize:], body)
	return PacketFromTag(kind, timestamp, tag)
}

// NewTag allocates the FLV tag of a packet whose body is bodyLen bytes, for a reader to
// fill the body (tag[TagHeaderSize:TagHeaderSize+bodyLen]) and hand to PacketFromTag:
// the payload is read once, into the packet's own tag.
func NewTag(bodyLen int) []byte {
	return make([]byte, TagHeaderSize+bodyLen+PrevSizeLen)
}

// PacketFromTag builds a packet around tag, a buffer from NewTag whose body is filled:
// the packet owns tag from now on and writes its header and PreviousTagSize.
func PacketFromTag(kind Kind, timestamp uint32, tag []byte) (*Packet, error) {
	if len(tag) < TagHeaderSize+PrevSizeLen {
		return nil, fmt.Errorf("media: tag of %d bytes is shorter than its framing", len(tag))
	}
	if len(tag)-TagHeaderSize-PrevSizeLen > MaxBodySize {
		return nil, ErrBodyTooLarge
	}
	p := &Packet{Kind: kind, Timestamp: timestamp, Tag: tag}
	p.encodeHeader()
	p.parseFlags()
	return p, nil
}

// WithTimestamp returns a copy of p re-stamped at ts with its own tag (for packets
// whose tag is written out, e.g. sequence headers replayed to a new viewer).
func (p *Packet) WithTimestamp(ts uint32) *Packet {
	q := p.Retimed(ts)
	q.Tag = append([]byte(nil), p.Tag...)
	q.encodeHeader()
	return q
}

// Retimed returns a copy of p at ts that shares p's tag, so no payload is copied (a
// recording rebased to start at 0 makes one per packet). Its Tag's header still says
// p's timestamp: write it as AppendTagHeader and then Tag[TagHeaderSize:].
func (p *Packet) Retimed(ts uint32) *Packet {
	return &Packet{
		Kind:            p.Kind,
		Timestamp:       ts,
		Keyframe:        p.Keyframe,
		SequenceHeader:  p.SequenceHeader,
		CompositionTime: p.CompositionTime,
		Tag:             p.Tag,
	}
}

// AppendTagHeader appends the FLV tag header of p (kind, body size, p.Timestamp).
func (p *Packet) AppendTagHeader(dst []byte) []byte {
	n := len(p.Tag) - TagHeaderSize - PrevSizeLen
	ts := p.Timestamp
	return append(dst, byte(p.Kind), byte(n>>16), byte(n>>8), byte(n),
		byte(ts>>16), byte(ts>>8), byte(ts), byte(ts>>24), 0, 0, 0)
}

// Body is the FLV tag body: for video the VideoTagHeader and its data, for audio the
// AudioTagHeader and its data, for data packets AMF0 values.
func (p *Packet) Body() []byte { return p.Tag[TagHeaderSize : len(p.Tag)-PrevSizeLen] }

// encodeHeader writes the FLV tag header and PreviousTagSize around the body (E.4.1).
func (p *Packet) encodeHeader() {
	n := len(p.Tag) - TagHeaderSize - PrevSizeLen
	p.AppendTagHeader(p.Tag[:0]) // TimestampExtended in byte 7, StreamID 0
	binary.BigEndian.PutUint32(p.Tag[len(p.Tag)-PrevSizeLen:], uint32(TagHeaderSize+n))
}

func (p *Packet) parseFlags() {
	b := p.Body()
	switch p.Kind {
	case KindVideo:
		if len(b) == 0 {
			return
		}
		p.Keyframe = b[0]>>4 == 1
		if b[0]&0x0f == VideoCodecAVC && len(b) >= 5 {
			p.SequenceHeader = b[1] == 0
			ct := int32(uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4]))
			p.CompositionTime = ct << 8 >> 8 // sign-extend SI24
		}
	case KindAudio:
		p.Keyframe = true
		p.SequenceHeader = len(b) >= 2 && b[0]>>4 == AudioFormatAAC && b[1] == 0
	default:
		p.Keyframe = true
	}
}

// VideoCodec returns the FLV CodecID of a video packet.
func (p *Packet) VideoCodec() uint8 {
	if b := p.Body(); p.Kind == KindVideo && len(b) > 0 {
		return b[0] & 0x0f
	}
	return 0
}

// AudioFormat returns the FLV SoundFormat of an audio packet.
func (p *Packet) AudioFormat() uint8 {
	if b := p.Body(); p.Kind == KindAudio && len(b) > 0 {
		return b[0] >> 4
	}
	return 0
}

// Payload is the codec data after the FLV audio/video tag header: AVCC NAL units or an
// AVCDecoderConfigurationRecord for AVC, a raw AAC frame or AudioSpecificConfig for AAC.
// It is nil when the packet carries another codec or is too short.
func (p *Packet) Payload() []byte {
	b := p.Body()
	switch {
	case p.Kind == KindVideo && p.VideoCodec() == VideoCodecAVC && len(b) >= 5:
		return b[5:]
	case p.Kind == KindAudio && p.AudioFormat() == AudioFormatAAC && len(b) >= 2:
		return b[2:]
	}
	return nil
}
