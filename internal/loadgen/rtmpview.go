package loadgen

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/livetape/livetape/media"
)

// ViewRTMP plays rtmp://addr/app/name until ctx is done, recording into st like View:
// a minimal RTMP client (handshake, connect, createStream, play, a chunk reader), so
// it costs the load generator little and measures any RTMP server alike.
func ViewRTMP(ctx context.Context, addr, app, name string, st *Stats, sampleEvery int) {
	start := time.Now()
	nc, done, err := dial(ctx, addr)
	if err != nil {
		st.fail(err)
		return
	}
	defer done()
	r := bufio.NewReaderSize(nc, 64<<10)
	if err := rtmpHandshake(nc, r); err != nil {
		st.fail(fmt.Errorf("rtmp handshake: %w", err))
		return
	}
	var cmds []byte
	cmds = appendChunked(cmds, 3, 20, 0, amfCommand("connect", 1, amfObject("app", app, "tcUrl", "rtmp://"+addr+"/"+app, "flashVer", "LNX 9,0,124,2")))
	cmds = appendChunked(cmds, 3, 20, 0, amfCommand("createStream", 2, nil))
	cmds = appendChunked(cmds, 8, 20, 1, append(amfCommand("play", 3, nil), amfString(name)...))
	if _, err := nc.Write(cmds); err != nil {
		st.fail(err)
		return
	}
	cr := chunkReader{r: r, chunkSize: 128, streams: map[uint32]*chunkStream{}}
	var frames int
	var lat []time.Duration
	defer func() {
		st.mu.Lock()
		st.Latency = append(st.Latency, lat...)
		st.Bytes += cr.n
		st.mu.Unlock()
	}()
	for {
		typeID, body, err := cr.next()
		if err != nil {
			if ctx.Err() == nil {
				st.fail(err)
			}
			return
		}
		if typeID != uint8(media.KindVideo) || len(body) < 2 || body[1] == 0 {
			continue // not a video frame (a sequence header, audio, data, commands)
		}
		now := time.Now()
		if frames == 0 {
			if body[0]>>4 != 1 {
				st.fail(errors.New("first video frame is not a keyframe"))
				return
			}
			st.mu.Lock()
			st.FirstKeyframe = append(st.FirstKeyframe, now.Sub(start))
			st.mu.Unlock()
		}
		frames++
		if frames%sampleEvery == 0 && len(body) >= 17 {
			if sent := time.Unix(0, int64(binary.BigEndian.Uint64(body[9:]))); sent.After(start) {
				lat = append(lat, now.Sub(sent))
			}
		}
	}
}

// rtmpHandshake sends C0 C1, reads S0 S1 S2 and answers C2 (the simple handshake).
func rtmpHandshake(w io.Writer, r io.Reader) error {
	c0c1 := make([]byte, 1+1536)
	c0c1[0] = 3
	rand.Read(c0c1[9:])
	if _, err := w.Write(c0c1); err != nil {
		return err
	}
	s := make([]byte, 1+2*1536)
	if _, err := io.ReadFull(r, s); err != nil {
		return err
	}
	_, err := w.Write(s[1 : 1+1536]) // C2 echoes S1
	return err
}

// appendChunked appends a message as type-0 and type-3 chunks of 128 bytes.
func appendChunked(b []byte, csid int, typeID byte, streamID uint32, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(csid), 0, 0, 0, byte(n>>16), byte(n>>8), byte(n), typeID)
	b = binary.LittleEndian.AppendUint32(b, streamID)
	for i := 0; i < n; i += 128 {
		if i > 0 {
			b = append(b, 0xc0|byte(csid))
		}
		b = append(b, payload[i:min(i+128, n)]...)
	}
	return b
}

func amfString(s string) []byte {
	return append(binary.BigEndian.AppendUint16([]byte{0x02}, uint16(len(s))), s...)
}

func amfNumber(f float64) []byte {
	return binary.BigEndian.AppendUint64([]byte{0x00}, math.Float64bits(f))
}

// amfObject is an AMF0 object of string properties.
func amfObject(kv ...string) []byte {
	b := []byte{0x03}
	for i := 0; i+1 < len(kv); i += 2 {
		b = binary.BigEndian.AppendUint16(b, uint16(len(kv[i])))
		b = append(append(b, kv[i]...), amfString(kv[i+1])...)
	}
	return append(b, 0, 0, 0x09)
}

// amfCommand is a command's name, transaction id and command object (null when nil).
func amfCommand(name string, tx float64, obj []byte) []byte {
	b := append(amfString(name), amfNumber(tx)...)
	if obj == nil {
		return append(b, 0x05)
	}
	return append(b, obj...)
}

type chunkStream struct {
	ts, length uint32
	typeID     uint8
	streamID   uint32
	ext        bool
	buf        []byte
}

// chunkReader assembles RTMP messages from chunks (RTMP 5.3), following the server's
// SetChunkSize. Extended timestamps are read in type-3 chunks too when the stream's
// last header had one, as ffmpeg does.
type chunkReader struct {
	r         *bufio.Reader
	chunkSize uint32
	streams   map[uint32]*chunkStream
	n         int64 // bytes read
	hdr       [16]byte
}

func (c *chunkReader) read(n int) ([]byte, error) {
	_, err := io.ReadFull(c.r, c.hdr[:n])
	c.n += int64(n)
	return c.hdr[:n], err
}

func (c *chunkReader) next() (uint8, []byte, error) {
	for {
		b, err := c.read(1)
		if err != nil {
			return 0, nil, err
		}
		fmtType, csid := b[0]>>6, uint32(b[0]&0x3f)
		switch csid {
		case 0:
			b, err := c.read(1)
			if err != nil {
				return 0, nil, err
			}
			csid = uint32(b[0]) + 64
		case 1:
			b, err := c.read(2)
			if err != nil {
				return 0, nil, err
			}
			csid = uint32(b[1])*256 + uint32(b[0]) + 64
		}
		cs := c.streams[csid]
		if cs == nil {
			cs = &chunkStream{}
			c.streams[csid] = cs
		}
		var field uint32
		switch fmtType {
		case 0, 1, 2:
			n := [3]int{11, 7, 3}[fmtType]
			h, err := c.read(n)
			if err != nil {
				return 0, nil, err
			}
			field = uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
			if fmtType <= 1 {
				cs.length = uint32(h[3])<<16 | uint32(h[4])<<8 | uint32(h[5])
				cs.typeID = h[6]
			}
			if fmtType == 0 {
				cs.streamID = binary.LittleEndian.Uint32(h[7:11])
			}
			cs.ext = field == 0xffffff
			if cs.ext {
				e, err := c.read(4)
				if err != nil {
					return 0, nil, err
				}
				field = binary.BigEndian.Uint32(e)
			}
			if fmtType == 0 {
				cs.ts = field
			} else {
				cs.ts += field
			}
		case 3:
			if cs.ext {
				if _, err := c.read(4); err != nil {
					return 0, nil, err
				}
			}
		}
		if cs.buf == nil {
			cs.buf = make([]byte, 0, cs.length)
		}
		take := min(c.chunkSize, cs.length-uint32(len(cs.buf)))
		at := len(cs.buf)
		cs.buf = append(cs.buf, make([]byte, take)...)
		if _, err := io.ReadFull(c.r, cs.buf[at:]); err != nil {
			return 0, nil, err
		}
		c.n += int64(take)
		if uint32(len(cs.buf)) < cs.length {
			continue
		}
		body := cs.buf
		cs.buf = nil
		if cs.typeID == 1 && len(body) >= 4 { // SetChunkSize
			c.chunkSize = binary.BigEndian.Uint32(body) & 0x7fffffff
			continue
		}
		return cs.typeID, body, nil
	}
}
