//
// Copyright (c) 2018- yutopp (yutopp@gmail.com)
//
// Distributed under the Boost Software License, Version 1.0. (See accompanying
// file LICENSE_1_0.txt or copy at  https://www.boost.org/LICENSE_1_0.txt)
//

package rtmp

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math"
	"sync"
	"time"

	"github.com/pkg/errors"
	"github.com/sirupsen/logrus"

	"github.com/yutopp/go-rtmp/message"
)

const ctrlMsgChunkStreamID = 2

const maxWriterQueueSize = 64

type ChunkMessage struct {
	StreamID uint32
	Message  message.Message
}

type ChunkStreamer struct {
	r *ChunkStreamerReader
	w *ChunkStreamerWriter

	readers map[int]*ChunkStreamReader
	writers map[int]*ChunkStreamWriter
	mu      sync.Mutex

	writerSched *chunkStreamerWriterSched

	msgDec *message.Decoder
	msgEnc *message.Encoder

	selfState *StreamControlState
	peerState *StreamControlState

	err  error
	done chan struct{}

	controlStreamWriter func(chunkStreamID int, timestamp uint32, msg message.Message) error

	cacheBuffer []byte
	config      *StreamControlStateConfig
	logger      logrus.FieldLogger

	// livetape patch: guard bounds incoming messages (nil: no bounds); partialMessages
	// counts the chunk streams holding part of a message, for it.
	guard           MessageGuard
	partialMessages int

	// livetape patch: alloc provides the buffers audio and video payloads are read
	// into (nil: go-rtmp's own buffers); wmu is held while a chunk is written and
	// flushed, and by whoever took the connection's writes over (Conn.LockWrites).
	alloc   PayloadAllocator
	wmu     sync.Mutex
	limited io.LimitedReader
}

// PayloadAllocator provides the buffer an audio or video message is read into, so its
// payload is read from the connection once, straight to where its user keeps it
// (livetape patch).
type PayloadAllocator interface {
	// AllocPayload is called when the first chunk of an audio or video message of
	// length bytes arrives, after MessageGuard.CheckMessageHeader. The payload is read
	// into buf[off:off+length]; the handler (OnAudio, OnVideo) gets a *Payload whose
	// Buffer is buf. A nil buf leaves the message to go-rtmp's own buffer.
	AllocPayload(typeID message.TypeID, length uint32) (buf []byte, off int)
}

// Payload is the io.Reader OnAudio and OnVideo get for a message read into a buffer
// from the PayloadAllocator (livetape patch). It is reused for the next message of
// the chunk stream: use it before the handler returns; Buffer stays the caller's.
type Payload struct {
	buf      []byte
	off, end int
	read     int
}

// Buffer is the buffer AllocPayload returned, with the payload at Bytes' position.
func (p *Payload) Buffer() []byte { return p.buf }

// Bytes is the payload.
func (p *Payload) Bytes() []byte { return p.buf[p.off:p.end] }

func (p *Payload) Read(b []byte) (int, error) {
	if p.off+p.read >= p.end {
		return 0, io.EOF
	}
	n := copy(b, p.buf[p.off+p.read:p.end])
	p.read += n
	return n, nil
}

// MessageGuard bounds incoming messages before go-rtmp buffers or decodes them
// (livetape patch). An error it returns ends the connection.
type MessageGuard interface {
	// CheckMessageHeader is called when the first chunk of a message arrives, before
	// any of its payload is buffered.
	CheckMessageHeader(h MessageHeader) error
	// CheckMessageBody is called with a complete message's payload before it is decoded.
	CheckMessageBody(typeID message.TypeID, body []byte) error
}

// MessageHeader is what MessageGuard.CheckMessageHeader is told (livetape patch).
type MessageHeader struct {
	ChunkStreamID int
	TypeID        message.TypeID
	Length        uint32
	// ChunkStreams is the number of chunk streams the peer has used, this one included.
	ChunkStreams int
	// PartialMessages is the number of other chunk streams holding an incomplete message.
	PartialMessages int
}

func NewChunkStreamer(r io.Reader, w io.Writer, config *StreamControlStateConfig) *ChunkStreamer {
	if config == nil {
		config = defaultStreamControlStateConfig
	}
	// livetape patch: reading a type-3 chunk peeks at its first bytes (see
	// skipRepeatedExtendedTimestamp).
	if _, ok := r.(peeker); !ok {
		r = bufio.NewReader(r)
	}

	cs := &ChunkStreamer{
		r: &ChunkStreamerReader{
			reader: r,
		},
		w: &ChunkStreamerWriter{
			writer: w,
		},

		readers: make(map[int]*ChunkStreamReader),
		writers: make(map[int]*ChunkStreamWriter),

		writerSched: &chunkStreamerWriterSched{
			writers: make(chan *ChunkStreamWriter, maxWriterQueueSize),
			stopCh:  make(chan struct{}),
		},

		msgDec: message.NewDecoder(nil),
		msgEnc: message.NewEncoder(nil),

		selfState: NewStreamControlState(config),
		peerState: NewStreamControlState(config),

		done: make(chan struct{}),

		// livetape patch: 16 bytes, not 64 KiB per connection: it only holds chunk
		// headers (payloads go through bytes.Buffer.ReadFrom, which ignores it).
		cacheBuffer: make([]byte, 16),
		config:      config,
		logger:      logrus.StandardLogger(),
	}
	cs.writerSched.streamer = cs

	return cs
}

func (cs *ChunkStreamer) Read(cmsg *ChunkMessage) (int, uint32, error) {
	reader, err := cs.NewChunkReader()
	if err != nil {
		return 0, 0, err
	}

	// livetape patch: a payload read into the allocator's buffer goes to the handler
	// as it is, without a decoder (audio and video messages have nothing to decode).
	if reader.direct != nil {
		reader.payload = Payload{buf: reader.direct, off: reader.directOff, end: reader.directOff + int(reader.messageLength)}
		if message.TypeID(reader.messageTypeID) == message.TypeIDAudioMessage {
			reader.audioMsg.Payload = &reader.payload
			cmsg.Message = &reader.audioMsg
		} else {
			reader.videoMsg.Payload = &reader.payload
			cmsg.Message = &reader.videoMsg
		}
		cmsg.StreamID = reader.messageStreamID
		return reader.basicHeader.chunkStreamID, uint32(reader.timestamp), nil
	}

	// livetape patch: the guard sees the whole payload before a (recursive) decoder does.
	if cs.guard != nil {
		if err := cs.guard.CheckMessageBody(message.TypeID(reader.messageTypeID), reader.buf.Bytes()); err != nil {
			return 0, 0, err
		}
	}

	cs.msgDec.Reset(reader)
	if err := cs.msgDec.Decode(message.TypeID(reader.messageTypeID), &cmsg.Message); err != nil {
		return 0, 0, err
	}

	cmsg.StreamID = reader.messageStreamID

	return reader.basicHeader.chunkStreamID, uint32(reader.timestamp), nil
}

func (cs *ChunkStreamer) Write(
	ctx context.Context, // NOTE: Retire writing when a current chunk is busy
	chunkStreamID int,
	timestamp uint32,
	cmsg *ChunkMessage,
) error {
	writer, err := cs.NewChunkWriter(ctx, chunkStreamID)
	if err != nil {
		return err
	}
	//defer writer.Close()

	// livetape patch: one encoder per call; a shared one raced when two goroutines wrote
	// on different chunk streams (e.g. media and go-rtmp's own onStatus).
	if err := message.NewEncoder(writer).Encode(cmsg.Message); err != nil {
		return err
	}
	writer.timestamp = timestamp
	writer.messageLength = uint32(writer.buf.Len())
	writer.messageTypeID = byte(cmsg.Message.TypeID())
	writer.messageStreamID = cmsg.StreamID

	return cs.Sched(writer)
}

func (cs *ChunkStreamer) NewChunkReader() (*ChunkStreamReader, error) {
again:
	reader, err := cs.readChunk()
	if err != nil {
		return nil, err
	}
	if cs.r.FragmentReadBytes() >= uint32(cs.peerState.ackWindowSize/2) { // TODO: fix size
		// livetape patch: an acknowledgement that cannot be sent (the peer closed) does
		// not end the reading of what the peer sent before it closed.
		if err := cs.sendAck(cs.r.TotalReadBytes()); err != nil {
			cs.logger.Debugf("Ack not sent: %+v", err)
		}
		cs.r.ResetFragmentReadBytes()
	}

	if !reader.completed {
		goto again
	}
	return reader, nil
}

// NewChunkWriter Returns a writer for a chunkStreamID.
// Wait until writing have been finished if the writer is running.
func (cs *ChunkStreamer) NewChunkWriter(ctx context.Context, chunkStreamID int) (*ChunkStreamWriter, error) {
	writer, err := cs.prepareChunkWriter(chunkStreamID)
	if err != nil {
		return nil, errors.Wrapf(err, "Failed to prepare chunk writer")
	}
	if err := writer.Wait(ctx); err != nil {
		return nil, errors.Wrapf(err, "Failed to wait chunk writer")
	}

	return writer, nil
}

func (cs *ChunkStreamer) Sched(writer *ChunkStreamWriter) error {
	writer.newChunk = true
	return cs.writerSched.Sched(writer)
}

func (cs *ChunkStreamer) SelfState() *StreamControlState {
	return cs.selfState
}

func (cs *ChunkStreamer) PeerState() *StreamControlState {
	return cs.peerState
}

func (cs *ChunkStreamer) Done() <-chan struct{} {
	return cs.done
}

func (cs *ChunkStreamer) Err() error {
	return cs.err
}

// releaseReader lets go of the read side of a connection no one reads again (livetape
// patch: ErrHandedOff): its buffered reader and chunk stream readers.
func (cs *ChunkStreamer) releaseReader() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.r = &ChunkStreamerReader{reader: eofReader{}}
	cs.readers = nil
}

// eofReader is the reader of a connection whose read side was let go.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func (cs *ChunkStreamer) Close() error {
	return cs.writerSched.Close()
}

// returns nil reader when chunk is fragmented.
func (cs *ChunkStreamer) readChunk() (*ChunkStreamReader, error) {
	var bh chunkBasicHeader
	if err := decodeChunkBasicHeader(cs.r, cs.cacheBuffer, &bh); err != nil {
		return nil, err
	}
	//cs.logger.Debugf("(READ) BasicHeader = %+v", bh)

	var mh chunkMessageHeader
	if err := decodeChunkMessageHeader(cs.r, bh.fmt, cs.cacheBuffer, &mh); err != nil {
		return nil, err
	}
	//cs.logger.Debugf("(READ) MessageHeader = %+v", mh)

	reader, err := cs.prepareChunkReader(bh.chunkStreamID)
	if err != nil {
		return nil, errors.Wrapf(err, "Failed to prepare chunk reader")
	}
	if reader.completed {
		// livetape patch: the buffer is dropped, not kept at the size of the largest
		// message the chunk stream carried (commands; media goes to the allocator's
		// buffers): an idle connection holds none.
		reader.buf = bytes.Buffer{}
		reader.completed = false
		reader.direct, reader.filled = nil, 0 // livetape patch: the buffer is the handler's now
	}

	// livetape patch: a type-3 chunk carries the extended timestamp of the latest type
	// 0, 1 or 2 header of its chunk stream again (RTMP 5.3.1.3); read as payload, it
	// shifted the stream by 4 bytes and ended in panic("invalid state").
	if bh.fmt == 3 && reader.messageHeader.extended {
		mh.extended, mh.extField = true, reader.messageHeader.extField
		if err := cs.skipRepeatedExtendedTimestamp(mh.extField); err != nil {
			return nil, err
		}
	}
	wasPartial := reader.buf.Len() > 0 || reader.filled > 0 // livetape patch: or in an allocated buffer

	reader.basicHeader = bh
	reader.messageHeader = mh

	switch bh.fmt {
	case 0:
		reader.timestamp = mh.timestamp
		reader.timestampDelta = 0 // reset
		reader.messageLength = mh.messageLength
		reader.messageTypeID = mh.messageTypeID
		reader.messageStreamID = mh.messageStreamID

	case 1:
		reader.timestampDelta = mh.timestampDelta
		reader.messageLength = mh.messageLength
		reader.messageTypeID = mh.messageTypeID

	case 2:
		reader.timestampDelta = mh.timestampDelta

	case 3:
		// DO NOTHING

	default:
		panic("unsupported chunk") // TODO: fix
	}

	//cs.logger.Debugf("(READ) MessageLength = %d, Current = %d", reader.messageLength, reader.buf.Len())

	// livetape patch: let the guard refuse a message by its header, before its payload
	// is buffered (a new length in a type 0/1 header counts as a new message).
	if cs.guard != nil && (!wasPartial || bh.fmt <= 1) {
		partial := cs.partialMessages
		if wasPartial {
			partial--
		}
		if err := cs.guard.CheckMessageHeader(MessageHeader{
			ChunkStreamID:   bh.chunkStreamID,
			TypeID:          message.TypeID(reader.messageTypeID),
			Length:          reader.messageLength,
			ChunkStreams:    len(cs.readers),
			PartialMessages: partial,
		}); err != nil {
			return nil, err
		}
	}

	// livetape patch: audio and video go straight into a buffer from the allocator.
	if !wasPartial && cs.alloc != nil && reader.messageLength > 0 &&
		(reader.messageTypeID == byte(message.TypeIDAudioMessage) || reader.messageTypeID == byte(message.TypeIDVideoMessage)) {
		buf, off := cs.alloc.AllocPayload(message.TypeID(reader.messageTypeID), reader.messageLength)
		if buf != nil {
			if off < 0 || len(buf)-off < int(reader.messageLength) {
				return nil, errors.Errorf("payload buffer of %d bytes at %d does not hold %d", len(buf), off, reader.messageLength)
			}
			reader.direct, reader.directOff, reader.directLen, reader.directTyp = buf, off, reader.messageLength, reader.messageTypeID
		}
	}
	if reader.direct != nil && (reader.messageLength != reader.directLen || reader.messageTypeID != reader.directTyp) {
		return nil, errors.Errorf("message length or type changed within a message (%d bytes, type %d)", reader.messageLength, reader.messageTypeID)
	}
	have := reader.buf.Len() + reader.filled

	expectLen := int(reader.messageLength) - have
	if expectLen < 0 || (expectLen == 0 && wasPartial) {
		// livetape patch: an error, not panic("invalid state"): a header announced a
		// length shorter than what its chunk stream already holds.
		return nil, errors.Errorf("message length %d is shorter than the %d bytes already read", reader.messageLength, have)
	}

	if uint32(expectLen) > cs.peerState.chunkSize {
		expectLen = int(cs.peerState.chunkSize)
	}
	//cs.logger.Debugf("(READ) Length = %d", expectLen)

	if reader.direct != nil {
		at := reader.directOff + reader.filled
		if _, err := io.ReadFull(cs.r, reader.direct[at:at+expectLen]); err != nil {
			return nil, err
		}
		reader.filled += expectLen
	} else {
		// livetape patch: ReadFrom of a limited reader without io.LimitReader's
		// allocation per chunk.
		cs.limited.R, cs.limited.N = cs.r, int64(expectLen)
		if _, err := reader.buf.ReadFrom(&cs.limited); err != nil {
			return nil, err
		}
		if cs.limited.N > 0 {
			return nil, io.ErrUnexpectedEOF
		}
	}
	//cs.logger.Debugf("(READ) Buffer: %+v", reader.buf.Bytes())

	if int(reader.messageLength)-reader.buf.Len()-reader.filled != 0 {
		// fragmented
		if !wasPartial {
			cs.partialMessages++ // livetape patch
		}
		return reader, nil
	}
	if wasPartial {
		cs.partialMessages-- // livetape patch
	}

	// read completed, update timestamp
	reader.timestamp += reader.timestampDelta
	reader.completed = true

	return reader, nil
}

// releaseReadBuffer lets go of the buffer of the message last read on a chunk stream,
// once it has been handled (livetape patch).
func (cs *ChunkStreamer) releaseReadBuffer(chunkStreamID int) {
	if r := cs.readers[chunkStreamID]; r != nil && r.completed && r.buf.Cap() > 0 {
		r.buf = bytes.Buffer{}
	}
}

// peeker is implemented by *bufio.Reader (livetape patch).
type peeker interface {
	Peek(n int) ([]byte, error)
}

// skipRepeatedExtendedTimestamp consumes the extended timestamp a type-3 chunk repeats
// (livetape patch). Peers that follow the 2009 spec text (rtmpdump, OBS before 30.1)
// do not repeat it, so the next 4 bytes are consumed only when they equal the expected
// value, as SRS and nginx-rtmp's successors do; payload that starts with those exact
// 4 bytes from such a peer is the (2^-32) price.
func (cs *ChunkStreamer) skipRepeatedExtendedTimestamp(extField uint32) error {
	next, err := cs.r.reader.(peeker).Peek(4)
	if err != nil {
		return err
	}
	if next[0] != byte(extField>>24) || next[1] != byte(extField>>16) || next[2] != byte(extField>>8) || next[3] != byte(extField) {
		return nil
	}
	_, err = io.ReadFull(cs.r, cs.cacheBuffer[:4])
	return err
}

func (cs *ChunkStreamer) writeChunk(writer *ChunkStreamWriter) (bool, error) {
	// livetape patch: a chunk is written and flushed whole while no one else writes.
	cs.wmu.Lock()
	defer cs.wmu.Unlock()
	cs.updateWriterHeader(writer)

	//cs.logger.Debugf("(WRITE) Headers: Basic = %+v / Message = %+v", writer.basicHeader, writer.messageHeader)
	//cs.logger.Debugf("(WRITE) Buffer: %+v", writer.buf.Bytes())

	expectLen := writer.buf.Len()
	if uint32(expectLen) > cs.selfState.chunkSize {
		expectLen = int(cs.selfState.chunkSize)
	}

	if err := encodeChunkBasicHeader(cs.w, &writer.basicHeader); err != nil {
		return false, err
	}
	if err := encodeChunkMessageHeader(cs.w, writer.basicHeader.fmt, &writer.messageHeader); err != nil {
		return false, err
	}

	if _, err := io.CopyN(cs.w, writer, int64(expectLen)); err != nil {
		return false, err
	}
	if err := cs.w.Flush(); err != nil {
		return false, err
	}

	if writer.buf.Len() != 0 {
		// fragmented
		return false, nil
	}
	// livetape patch: a written message's buffer is let go, not kept at the size of
	// the largest message of the chunk stream (the answers to connect and play).
	writer.buf = bytes.Buffer{}

	return true, nil
}

func (cs *ChunkStreamer) updateWriterHeader(writer *ChunkStreamWriter) {
	fmt := byte(2) // default: only timestamp delta
	if writer.messageHeader.messageLength != writer.messageLength ||
		writer.messageTypeID != writer.messageHeader.messageTypeID {
		// header or type id is updated, change fmt to 1 to notify difference and update state
		writer.messageHeader.messageLength = writer.messageLength
		writer.messageHeader.messageTypeID = writer.messageTypeID
		fmt = 1
	}
	if writer.timestamp != writer.messageHeader.timestamp || writer.newChunk {
		if writer.timestamp >= writer.messageHeader.timestamp {
			writer.timestampDelta = writer.timestamp - writer.messageHeader.timestamp
		} else {
			// timestamp is reversed, clear timestamp data
			fmt = 0
			writer.timestampDelta = 0
		}
	}
	writer.newChunk = false
	if writer.timestampDelta == writer.messageHeader.timestampDelta && fmt == 2 {
		fmt = 3
	}
	writer.messageHeader.timestampDelta = writer.timestampDelta
	writer.messageHeader.timestamp = writer.timestamp

	if writer.messageHeader.messageStreamID != writer.messageStreamID {
		fmt = 0
		writer.messageHeader.messageStreamID = writer.messageStreamID
	}
	writer.basicHeader.fmt = fmt
}

func (cs *ChunkStreamer) waitWriters() {
	cs.mu.Lock()
	defer cs.mu.Unlock()

	// Wait until that writers are finished for 3 seconds. (NOTE: 3s is addhoc value...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()

	for k, writer := range cs.writers {
		if err := writer.Wait(ctx); err != nil {
			cs.logger.Warnf("Failed to wait writer: ID = %d", k)
		}
	}
}

func (cs *ChunkStreamer) forceCloseWriters() {
	cs.mu.Lock()
	defer cs.mu.Unlock()

	for _, writer := range cs.writers {
		//writer.lastErr = cs.err
		close(writer.closeCh)
	}
}

func (cs *ChunkStreamer) prepareChunkReader(chunkStreamID int) (*ChunkStreamReader, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()

	reader, ok := cs.readers[chunkStreamID]
	if !ok {
		if len(cs.readers) >= cs.config.MaxChunkStreams {
			return nil, errors.Errorf(
				"Creating chunk streams limit exceeded(Reader): Limit = %d",
				cs.config.MaxChunkStreams,
			)
		}

		reader = &ChunkStreamReader{}
		cs.readers[chunkStreamID] = reader
	}

	return reader, nil
}

func (cs *ChunkStreamer) prepareChunkWriter(chunkStreamID int) (*ChunkStreamWriter, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()

	writer, ok := cs.writers[chunkStreamID]
	if !ok {
		if len(cs.writers) >= cs.config.MaxChunkStreams {
			return nil, errors.Errorf(
				"Creating chunk streams limit exceeded(Writer): Limit = %d",
				cs.config.MaxChunkStreams,
			)
		}

		writer = &ChunkStreamWriter{
			ChunkStreamReader: ChunkStreamReader{
				basicHeader: chunkBasicHeader{
					chunkStreamID: chunkStreamID,
				},
				messageHeader: chunkMessageHeader{
					timestamp: math.MaxUint32, // initial state will be updated by writer.timestamp
				},
			},
			doneCh:   make(chan struct{}),
			closeCh:  make(chan struct{}),
			newChunk: true,
		}
		close(writer.doneCh)
		cs.writers[chunkStreamID] = writer
	}

	return writer, nil
}

func (cs *ChunkStreamer) sendAck(readBytes uint32) error {
	cs.logger.Debugf("Sending Ack...: Bytes = %d", readBytes)
	// TODO: fix timestamp
	return cs.controlStreamWriter(ctrlMsgChunkStreamID, 0, &message.Ack{
		SequenceNumber: readBytes,
	})
}

// chunkStreamerWriterSched writes the scheduled messages in order.
//
// livetape patch: its goroutine runs only while messages are queued and ends when the
// queue is empty; the next Sched starts another. A connection spends its life idle on
// this side (a player's media goes out through livetape's own writer, a publisher gets
// an acknowledgement now and then), and a parked goroutine per connection was a stack
// and a wakeup for nothing.
type chunkStreamerWriterSched struct {
	streamer *ChunkStreamer
	writers  chan *ChunkStreamWriter
	stopCh   chan struct{}

	mu      sync.Mutex
	running bool // a goroutine is writing
	ended   bool // stopped or a write failed: streamer.done is closed
}

func (sched *chunkStreamerWriterSched) Sched(writer *ChunkStreamWriter) error {
	// livetape patch: once the writer has ended (a write failed: the peer is gone), a
	// message is dropped rather than queued for no one, which blocked the reader once
	// the queue was full; the reader goes on reading what the peer sent.
	select {
	case sched.writers <- writer:
	case <-sched.streamer.done:
		return nil
	}
	sched.mu.Lock()
	if !sched.running && !sched.ended {
		sched.running = true
		go sched.run()
	}
	sched.mu.Unlock()
	return nil
}

// run writes until the queue is empty, Close is called or a write fails.
func (sched *chunkStreamerWriterSched) run() {
	err := sched.writeQueued()
	if err == errSchedIdle {
		return
	}
	sched.end(err)
}

// errSchedIdle ends a run whose queue is empty (the scheduler goes on).
var errSchedIdle = errors.New("writer queue empty")

func (sched *chunkStreamerWriterSched) writeQueued() (err error) {
	defer func() {
		if r := recover(); r != nil {
			errTmp, ok := r.(error)
			if !ok {
				errTmp = errors.Errorf("Panic: %+v", r)
			}
			err = errors.WithStack(errTmp)
		}
	}()

	for {
		select {
		case <-sched.stopCh:
			return nil
		default:
		}
		select {
		case writer := <-sched.writers:
			isCompleted, err := sched.streamer.writeChunk(writer)
			if err != nil {
				writer.lastErr = err
				close(writer.doneCh)
				return err
			}
			if isCompleted {
				close(writer.doneCh)
				continue
			}

			// Enqueue writer
			sched.writers <- writer

		case <-sched.stopCh:
			return nil

		default:
			// Empty: end this run, unless a Sched queued a message since (it saw
			// running and started none) or Close was called (it saw running and
			// left the end to this goroutine).
			sched.mu.Lock()
			select {
			case <-sched.stopCh:
				sched.mu.Unlock()
				return nil
			default:
			}
			if len(sched.writers) == 0 {
				sched.running = false
				sched.mu.Unlock()
				return errSchedIdle
			}
			sched.mu.Unlock()
		}
	}
}

// end records why writing ended and closes streamer.done; once.
func (sched *chunkStreamerWriterSched) end(err error) {
	sched.mu.Lock()
	if sched.ended {
		sched.mu.Unlock()
		return
	}
	sched.ended, sched.running = true, false
	sched.mu.Unlock()
	cs := sched.streamer
	cs.err = err
	if err != nil {
		cs.forceCloseWriters()
	}
	close(cs.done)
}

func (sched *chunkStreamerWriterSched) Close() error {
	sched.mu.Lock()
	if sched.ended {
		sched.mu.Unlock()
		return nil
	}
	select {
	case <-sched.stopCh:
	default:
		close(sched.stopCh)
	}
	idle := !sched.running
	sched.mu.Unlock()
	if idle { // no goroutine to see stopCh
		sched.end(nil)
	}
	return nil
}
