package media

// RTMPChunks is a packet as an RTMP message split into chunks, ready to be written to
// RTMP players with writev: serialize once, write many. Every message has a type-0
// header with its absolute timestamp, so the same bytes are right for every viewer
// whatever it received before (a viewer joining on the GOP cache, one that skipped
// to a keyframe); type-1 headers with deltas, as nginx-rtmp sends, would depend on
// each viewer's previous message on the chunk stream and so be encoded per viewer.
// The cost is 4 bytes per message (about 0.03 % of a 2.5 Mbit/s stream).
type RTMPChunks struct {
	CSID      int    // chunk stream id, 2..63
	StreamID  uint32 // message stream id
	ChunkSize uint32
	// Bufs are the chunks' headers and the parts of the packet's body they carry
	// (shared, not copied). Copy the slice before writing it (net.Buffers.WriteTo
	// consumes it).
	Bufs [][]byte
}

// RTMP message type ids of the packet kinds (RTMP 7.1: audio 8, video 9, data AMF0
// 18) are the FLV tag types.

// RTMPChunks returns p as an RTMP message on chunk stream csid of message stream
// streamID, cut into chunks of chunkSize. The first call makes them and keeps them with
// the packet; later calls with the same arguments (every viewer of a server that uses
// one chunk size) return the same chunks. Timestamps from 0xFFFFFF on go in the
// extended timestamp field, repeated in every type-3 chunk (RTMP 5.3.1.3, as ffmpeg,
// OBS and nginx-rtmp read them).
func (p *Packet) RTMPChunks(csid int, streamID, chunkSize uint32) *RTMPChunks {
	if c := p.rtmp.Load(); c != nil && c.CSID == csid && c.StreamID == streamID && c.ChunkSize == chunkSize {
		return c
	}
	// No copy of the body: the packet is in the GOP cache for a GOP and a copy would
	// double what the cache holds. With the chunk size livetape sends (60000) nearly
	// every message is one chunk, a header and the body: two buffers per packet.
	c := &RTMPChunks{CSID: csid, StreamID: streamID, ChunkSize: chunkSize,
		Bufs: RTMPMessageChunks(uint8(p.Kind), csid, streamID, p.Timestamp, p.Body(), chunkSize)}
	p.rtmp.CompareAndSwap(nil, c) // the first key stays cached; another is made per call
	return c
}

// RTMPMessageChunks cuts an RTMP message of type typeID into chunks of chunkSize on
// chunk stream csid (2..63), a type-0 header first: the result alternates headers and
// parts of body (shared, not copied).
func RTMPMessageChunks(typeID uint8, csid int, streamID, timestamp uint32, body []byte, chunkSize uint32) [][]byte {
	if csid < 2 || csid > 63 {
		panic("media: RTMP chunk stream id out of 2..63")
	}
	if chunkSize == 0 {
		chunkSize = 128
	}
	ext := timestamp >= 0xffffff
	chunks := max(1, (len(body)+int(chunkSize)-1)/int(chunkSize))
	extLen := 0
	if ext {
		extLen = 4
	}
	hdrs := make([]byte, 0, 12+extLen+(chunks-1)*(1+extLen))
	bufs := make([][]byte, 0, 2*chunks)

	ts := min(timestamp, 0xffffff)
	n := len(body)
	hdrs = append(hdrs, byte(csid), // fmt 0
		byte(ts>>16), byte(ts>>8), byte(ts),
		byte(n>>16), byte(n>>8), byte(n),
		typeID,
		byte(streamID), byte(streamID>>8), byte(streamID>>16), byte(streamID>>24)) // little endian
	if ext {
		hdrs = appendUint32(hdrs, timestamp)
	}
	bufs = append(bufs, hdrs)
	for i := 0; i < len(body); i += int(chunkSize) {
		if i > 0 {
			at := len(hdrs)
			hdrs = append(hdrs, 0xc0|byte(csid)) // fmt 3
			if ext {
				hdrs = appendUint32(hdrs, timestamp)
			}
			bufs = append(bufs, hdrs[at:])
		}
		bufs = append(bufs, body[i:min(i+int(chunkSize), len(body))])
	}
	return bufs
}

func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}
