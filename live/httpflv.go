package live

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
	"github.com/livetape/livetape/stream"
)

// flvWriteTimeout bounds one write to an HTTP-FLV viewer; a viewer that does not read
// for this long is disconnected.
const flvWriteTimeout = 10 * time.Second

// flvSocketBuffer is SO_SNDBUF for HTTP-FLV viewers: 20 Mbit/s at 100 ms RTT.
const flvSocketBuffer = 256 << 10

const flvResponseHeader = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: video/x-flv\r\n" +
	"Transfer-Encoding: chunked\r\n" +
	"Cache-Control: no-cache, no-store\r\n" +
	"Access-Control-Allow-Origin: *\r\n" +
	"Connection: close\r\n\r\n"

// serveFLV streams a live stream as HTTP-FLV. The connection is hijacked so that the
// shared, pre-serialized FLV tags go to the socket with one writev per batch and no
// copy: serialize once, write many.
func (s *Server) serveFLV(w http.ResponseWriter, r *http.Request, app, id string) {
	stream, err := s.lookupPlay(app, id, r.URL.Query())
	if err != nil {
		playError(w, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "HTTP-FLV needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	sub, info, err := stream.SubscribeAs(protoHTTPFLV, 0)
	if err != nil {
		playError(w, err)
		return
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		sub.Close()
		return
	}
	// The viewer gets a goroutine of its own and this one returns: net/http then lets
	// go of the connection's buffered reader and writer, the response's buffer and the
	// request (about 10 KiB a viewer), which it keeps until the handler returns.
	log := s.log.With("stream", stream.Params.Key(), "viewer", conn.RemoteAddr().String(), "player", "http-flv")
	go playFLV(conn, sub, info, log)
}

// playFLV writes the subscriber's packets to an HTTP-FLV viewer's hijacked connection
// until the stream ends or the viewer goes away.
func playFLV(conn net.Conn, sub *stream.Subscriber, info stream.Info, log *slog.Logger) {
	defer sub.Close()
	defer conn.Close()
	// A modest kernel buffer keeps memory per viewer bounded and lets a stalled viewer
	// show up in its queue, where the hub handles it, instead of in the kernel.
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetWriteBuffer(flvSocketBuffer)
	}
	fw := &flvConn{conn: conn, sock: newSocketWriter(conn), gate: writeGate{conn: conn}}
	sub.OnDrop(fw.gate.abort)
	hdr := flv.Header(info.HasAudio || !info.HasVideo, info.HasVideo || !info.HasAudio)
	if err := fw.writeHead(hdr); err != nil {
		return
	}
	for {
		batch, ok := nextBatch(sub, fw.pkts, info.HasVideo)
		fw.pkts = batch
		if !ok {
			break
		}
		if err := fw.writeChunk(batch); err != nil {
			log.Debug("http-flv viewer gone", "err", err)
			return
		}
	}
	if err := sub.Err(); err != nil {
		log.Warn("http-flv viewer dropped", "reason", err)
		return
	}
	if fw.gate.arm(flvWriteTimeout) {
		fw.conn.Write([]byte("0\r\n\r\n"))
	}
}

// flvConn writes chunked HTTP-FLV with reusable buffers, so a batch costs no allocation.
type flvConn struct {
	conn  net.Conn
	sock  *socketWriter
	gate  writeGate // write deadlines; the hub's drop aborts writes for good
	bufs  net.Buffers
	out   net.Buffers
	pkts  []*media.Packet
	chunk [20]byte
}

func (f *flvConn) writeHead(flvHeader []byte) error {
	head := flvResponseHeader + strconv.FormatInt(int64(len(flvHeader)), 16) + "\r\n" + string(flvHeader) + "\r\n"
	if !f.gate.arm(flvWriteTimeout) {
		return errWritesAborted
	}
	_, err := io.WriteString(f.conn, head)
	return err
}

var crlf = []byte("\r\n")

// writeChunk sends the tags of batch as one HTTP chunk with a single writev.
func (f *flvConn) writeChunk(batch []*media.Packet) error {
	n := 0
	for _, p := range batch {
		n += len(p.Tag)
	}
	size := strconv.AppendInt(f.chunk[:0], int64(n), 16)
	size = append(size, '\r', '\n')
	bufs := append(f.bufs[:0], size)
	for _, p := range batch {
		bufs = append(bufs, p.Tag)
	}
	bufs = append(bufs, crlf)
	f.bufs, f.out = bufs, bufs // writev consumes f.out, f.bufs keeps the slice
	if !f.gate.arm(flvWriteTimeout) {
		return errWritesAborted
	}
	err := f.sock.writeBuffers(&f.out)
	clear(f.bufs[:cap(f.bufs)]) // drop references to packets
	return err
}
