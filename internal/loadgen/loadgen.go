// Package loadgen drives a live server with a synthetic publisher and real HTTP-FLV
// viewers over loopback, measuring what viewers see: time to the first keyframe and
// publish-to-viewer latency. Benchmarks and cmd/livetape-load use it.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"iter"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
)

// avcRecord is a real 1280x720 High@3.1 decoder configuration (x264), so servers that
// parse the sequence header accept the stream.
var avcRecord = []byte{
	0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
	0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83,
	0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
}

// Stream describes the synthetic stream.
type Stream struct {
	Bitrate int           // video+audio bits per second (default 2.5 Mbit/s)
	FPS     int           // video frames per second (default 30)
	GOP     time.Duration // keyframe interval (default 2 s)
}

func (s *Stream) defaults() {
	if s.Bitrate == 0 {
		s.Bitrate = 2_500_000
	}
	if s.FPS == 0 {
		s.FPS = 30
	}
	if s.GOP == 0 {
		s.GOP = 2 * time.Second
	}
}

// Frame is one message of the synthetic stream: an FLV tag body and when it is due.
type Frame struct {
	Kind media.Kind
	At   time.Duration // from the start of the stream; the RTMP timestamp in ms
	Body []byte        // reused by the next frame of the same shape: copy to keep
}

// Frames yields the synthetic stream's messages in order, endlessly: the AVC and AAC
// sequence headers, then 30 fps video (a keyframe every GOP, 5x an inter frame, as an
// encoder at constant bitrate makes them) interleaved with 128 kbit/s AAC audio.
func (s Stream) Frames() iter.Seq[Frame] {
	s.defaults()
	return func(yield func(Frame) bool) {
		const audioRate = 128_000
		audioFrame := audioRate / 8 * 1024 / 44100
		gopFrames := int(s.GOP.Seconds() * float64(s.FPS))
		videoPerGOP := int(float64(s.Bitrate-audioRate) / 8 * s.GOP.Seconds())
		inter := videoPerGOP / (gopFrames + 4)
		key := 5 * inter
		if !yield(Frame{Kind: media.KindVideo, Body: append([]byte{0x17, 0, 0, 0, 0}, avcRecord...)}) ||
			!yield(Frame{Kind: media.KindAudio, Body: []byte{0xaf, 0, 0x12, 0x10}}) {
			return
		}
		keyBody := make([]byte, key)
		interBody := make([]byte, inter)
		audioBody := make([]byte, 2+audioFrame)
		audioBody[0], audioBody[1] = 0xaf, 1
		frameDur := time.Second / time.Duration(s.FPS)
		audioDur := 1024 * time.Second / 44100
		var nextAudio time.Duration
		for i := 0; ; i++ {
			at := time.Duration(i) * frameDur
			for ; nextAudio <= at; nextAudio += audioDur {
				if !yield(Frame{Kind: media.KindAudio, At: nextAudio, Body: audioBody}) {
					return
				}
			}
			body := interBody
			body[0] = 0x27
			if i%gopFrames == 0 {
				body = keyBody
				body[0] = 0x17
			}
			// One AVCC NAL unit covering the frame; its first 8 bytes are free for the
			// publisher's send time.
			body[1] = 1
			binary.BigEndian.PutUint32(body[5:], uint32(len(body)-9))
			if !yield(Frame{Kind: media.KindVideo, At: at, Body: body}) {
				return
			}
		}
	}
}

// Publish pushes the synthetic stream to rtmpURL-like addr/app/name in real time until
// ctx is done. Every video frame carries its send time (UNIX ns) right after the AVC
// NAL length, which Viewer reads back to measure latency.
func Publish(ctx context.Context, addr, app, name string, s Stream) error {
	cc, err := rtmp.Dial("rtmp", addr, &rtmp.ConnConfig{})
	if err != nil {
		return err
	}
	defer cc.Close()
	if err := cc.Connect(&message.NetConnectionConnect{Command: message.NetConnectionConnectCommand{
		App: app, TCURL: "rtmp://" + addr + "/" + app,
	}}); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	st, err := cc.CreateStream(nil, 4096)
	if err != nil {
		return fmt.Errorf("createStream: %w", err)
	}
	if err := st.Publish(&message.NetStreamPublish{PublishingName: name, PublishingType: "live"}); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	start := time.Now()
	for f := range s.Frames() {
		if d := time.Until(start.Add(f.At)); d > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(d):
			}
		}
		var msg message.Message = &message.AudioMessage{Payload: bytes.NewReader(f.Body)}
		csid := 6
		if f.Kind == media.KindVideo {
			if len(f.Body) >= 17 && f.Body[1] == 1 {
				binary.BigEndian.PutUint64(f.Body[9:], uint64(time.Now().UnixNano()))
			}
			msg, csid = &message.VideoMessage{Payload: bytes.NewReader(f.Body)}, 7
		}
		if err := st.Write(csid, uint32(f.At.Milliseconds()), msg); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

// Stats are what a group of viewers measured.
type Stats struct {
	mu            sync.Mutex
	FirstKeyframe []time.Duration // request sent -> first video keyframe read, per viewer
	Latency       []time.Duration // frame sent by the publisher -> read by a viewer
	Bytes         int64
	Errors        []error
}

// Percentile returns the p-th percentile (0..100) of ds.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// View plays url as HTTP-FLV until ctx is done, recording into st. The first keyframe
// must be the first video frame; sampleEvery limits latency samples (1 = every frame).
func View(ctx context.Context, url string, st *Stats, sampleEvery int) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		st.fail(err)
		return
	}
	start := time.Now()
	// A connection of its own read through one 64 KiB buffer, as ViewRTMP reads: with
	// http.Client a viewer also ran the transport's reader goroutine and read through
	// 4 KiB, so HTTP-FLV viewers cost their side more than RTMP viewers did, and the
	// server's figures for the two protocols came from clients that read differently.
	nc, done, err := dial(ctx, req.URL.Host)
	if err != nil {
		st.fail(err)
		return
	}
	defer done()
	if err := req.Write(nc); err != nil {
		st.fail(err)
		return
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(nc, 64<<10), req)
	if err != nil {
		st.fail(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		st.fail(fmt.Errorf("%s: %s", url, resp.Status))
		return
	}
	r, err := flv.NewReader(resp.Body)
	if err != nil {
		st.fail(err)
		return
	}
	var frames int
	var lat []time.Duration
	defer func() {
		st.mu.Lock()
		st.Latency = append(st.Latency, lat...)
		st.Bytes += r.Offset
		st.mu.Unlock()
	}()
	for {
		p, err := r.ReadPacket()
		if err != nil {
			if ctx.Err() == nil {
				st.fail(err)
			}
			return
		}
		if p.Kind != media.KindVideo || p.SequenceHeader {
			continue
		}
		now := time.Now()
		if frames == 0 {
			if !p.Keyframe {
				st.fail(fmt.Errorf("first video frame is not a keyframe"))
				return
			}
			st.mu.Lock()
			st.FirstKeyframe = append(st.FirstKeyframe, now.Sub(start))
			st.mu.Unlock()
		}
		frames++
		// Frames from the GOP cache were sent before the viewer came: not latency.
		if b := p.Body(); frames%sampleEvery == 0 && len(b) >= 17 {
			if sent := time.Unix(0, int64(binary.BigEndian.Uint64(b[9:]))); sent.After(start) {
				lat = append(lat, now.Sub(sent))
			}
		}
	}
}

// dial connects a viewer to addr. The connection is closed when ctx is done, which
// ends the viewer's reads; done closes it earlier.
func dial(ctx context.Context, addr string) (nc net.Conn, done func(), err error) {
	var d net.Dialer
	nc, err = d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	return nc, func() { stop(); nc.Close() }, nil
}

func (st *Stats) fail(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.Errors = append(st.Errors, err)
}
