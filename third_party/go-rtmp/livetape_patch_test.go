package rtmp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/yutopp/go-rtmp/message"
)

// chunked encodes one message as a type-0 chunk and type-3 continuations (livetape
// patch tests).
func chunked(csid int, typeID byte, ts uint32, payload []byte, chunkSize int) [][]byte {
	var out [][]byte
	h := []byte{byte(csid), byte(ts >> 16), byte(ts >> 8), byte(ts),
		byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typeID, 1, 0, 0, 0}
	for i := 0; i < len(payload); i += chunkSize {
		if i > 0 {
			h = []byte{0xc0 | byte(csid)}
		}
		end := i + chunkSize
		if end > len(payload) {
			end = len(payload)
		}
		out = append(out, append(h, payload[i:end]...))
	}
	return out
}

type tagAllocator struct{ calls int }

func (a *tagAllocator) AllocPayload(_ message.TypeID, length uint32) ([]byte, int) {
	a.calls++
	return make([]byte, 11+int(length)+4), 11
}

// Audio and video read through a PayloadAllocator land in its buffer, at its offset,
// even when their chunks interleave with other chunk streams; other messages keep
// go-rtmp's buffers.
func TestPayloadAllocator(t *testing.T) {
	video := bytes.Repeat([]byte("video-"), 100)
	audio := bytes.Repeat([]byte("a"), 150)
	v := chunked(6, byte(message.TypeIDVideoMessage), 40, video, 128)
	a := chunked(4, byte(message.TypeIDAudioMessage), 41, audio, 128)
	var in bytes.Buffer
	in.Write(v[0])
	in.Write(a[0])
	in.Write(v[1])
	in.Write(a[1])
	for _, c := range v[2:] {
		in.Write(c)
	}
	ack := []byte{0x02, 0, 0, 0, 0, 0, 4, byte(message.TypeIDAck), 0, 0, 0, 0, 0, 0, 0, 9}
	in.Write(ack)

	alloc := &tagAllocator{}
	cs := NewChunkStreamer(bufio.NewReader(&in), io.Discard, nil)
	cs.alloc = alloc
	var cmsg ChunkMessage

	_, ts, err := cs.Read(&cmsg)
	require.NoError(t, err)
	require.Equal(t, uint32(41), ts)
	p := cmsg.Message.(*message.AudioMessage).Payload.(*Payload)
	require.Equal(t, audio, p.Bytes())
	require.Len(t, p.Buffer(), 11+len(audio)+4)
	require.Equal(t, audio, p.Buffer()[11:11+len(audio)])
	got, _ := io.ReadAll(p)
	require.Equal(t, audio, got)

	_, ts, err = cs.Read(&cmsg)
	require.NoError(t, err)
	require.Equal(t, uint32(40), ts)
	require.Equal(t, video, cmsg.Message.(*message.VideoMessage).Payload.(*Payload).Bytes())

	_, _, err = cs.Read(&cmsg)
	require.NoError(t, err)
	require.Equal(t, uint32(9), cmsg.Message.(*message.Ack).SequenceNumber)
	require.Equal(t, 2, alloc.calls)
}

// A type-1 header that changes the length of a message being read into an allocated
// buffer is an error, not a write past the buffer.
func TestPayloadAllocatorLengthChange(t *testing.T) {
	v := chunked(6, byte(message.TypeIDVideoMessage), 0, make([]byte, 300), 128)
	var in bytes.Buffer
	in.Write(v[0])
	// fmt 1, delta 0, length 1000, video
	in.Write(append([]byte{0x40 | 6, 0, 0, 0, 0, 0x03, 0xe8, byte(message.TypeIDVideoMessage)}, make([]byte, 128)...))
	cs := NewChunkStreamer(bufio.NewReader(&in), io.Discard, nil)
	cs.alloc = &tagAllocator{}
	var cmsg ChunkMessage
	_, _, err := cs.Read(&cmsg)
	require.ErrorContains(t, err, "changed within a message")
}

// lockedWriter fails the test when written to while the lock says it must not be.
type lockedWriter struct {
	mu     sync.Mutex
	locked bool
	buf    bytes.Buffer
	bad    int
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.locked {
		w.bad++
	}
	return w.buf.Write(b)
}

// While the writes are taken over (LockWrites), go-rtmp writes nothing; its message
// goes out, whole, after UnlockWrites.
func TestLockWrites(t *testing.T) {
	w := &lockedWriter{}
	bw := bufio.NewWriterSize(w, 64)
	cs := NewChunkStreamer(bytes.NewReader(nil), bw, nil)
	c := &Conn{streamer: cs}

	c.LockWrites()
	w.mu.Lock()
	w.locked = true
	w.mu.Unlock()
	errc := make(chan error, 1)
	go func() {
		errc <- cs.Write(context.Background(), 3, 0, &ChunkMessage{Message: &message.Ack{SequenceNumber: 7}})
	}()
	require.NoError(t, <-errc) // queued; the writer goroutine waits for the lock
	waitFor(t, "the writer goroutine blocked on the write lock", writerBlockedOnLock)
	w.mu.Lock()
	w.locked = false
	w.mu.Unlock()
	c.UnlockWrites()
	_, err := cs.NewChunkWriter(context.Background(), 3) // waits for the message to be written
	require.NoError(t, err)
	require.Equal(t, 0, w.bad)
	out := w.buf.Bytes()
	require.Len(t, out, 12+4)
	require.Equal(t, uint32(7), binary.BigEndian.Uint32(out[12:]))
}

// The writer goroutine runs only while messages are queued: streamers at rest hold
// none, messages still go out in order, and Close of an idle streamer ends it (Done
// closed, no error) as it ended the goroutine before.
func TestWriterGoroutineOnlyWhileWriting(t *testing.T) {
	before := runtime.NumGoroutine()
	streamers := make([]*ChunkStreamer, 100)
	var out bytes.Buffer
	for i := range streamers {
		var w io.Writer = io.Discard
		if i == 0 {
			w = &out
		}
		streamers[i] = NewChunkStreamer(bytes.NewReader(nil), w, nil)
	}
	require.Less(t, runtime.NumGoroutine(), before+10, "goroutines of 100 streamers at rest")

	cs := streamers[0]
	for i := 0; i < 50; i++ {
		// Each Write waits for the previous message of its chunk stream to be written.
		require.NoError(t, cs.Write(context.Background(), 3, uint32(i), &ChunkMessage{Message: &message.Ack{SequenceNumber: uint32(i)}}))
	}
	_, err := cs.NewChunkWriter(context.Background(), 3) // the last one written
	require.NoError(t, err)
	in := NewChunkStreamer(bufio.NewReader(bytes.NewReader(out.Bytes())), io.Discard, nil)
	for i := 0; i < 50; i++ {
		var cmsg ChunkMessage
		_, _, err := in.Read(&cmsg)
		require.NoError(t, err)
		require.Equal(t, uint32(i), cmsg.Message.(*message.Ack).SequenceNumber)
	}

	for _, s := range append(streamers, in) {
		require.NoError(t, s.Close())
		require.NoError(t, s.Close()) // a second Close is no error
		select {
		case <-s.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("Done not closed by Close")
		}
		require.NoError(t, s.Err())
	}
	waitFor(t, "the writer goroutines to end", func() bool { return runtime.NumGoroutine() < before+10 })
}

// waitFor polls cond until it holds; it fails the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// writerBlockedOnLock tells whether a goroutine waits for the write lock inside
// writeChunk.
func writerBlockedOnLock() bool {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "(*ChunkStreamer).writeChunk") && strings.Contains(g, "sync.(*Mutex).Lock") {
			return true
		}
	}
	return false
}
