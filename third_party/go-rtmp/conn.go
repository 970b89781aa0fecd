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
	"io/ioutil"
	"sync"

	"github.com/hashicorp/go-multierror"
	"github.com/pkg/errors"
	"github.com/sirupsen/logrus"

	"github.com/yutopp/go-rtmp/message"
)

type Conn struct {
	rwc      io.ReadWriteCloser
	bufr     *bufio.Reader
	bufw     *bufio.Writer
	streamer *ChunkStreamer
	streams  *streams
	handler  Handler

	config *ConnConfig
	logger logrus.FieldLogger

	ignoredMessages uint32

	m        sync.Mutex
	isClosed bool
}

type ConnConfig struct {
	Handler                   Handler
	SkipHandshakeVerification bool

	IgnoreMessagesOnNotExistStream          bool
	IgnoreMessagesOnNotExistStreamThreshold uint32

	ReaderBufferSize int
	WriterBufferSize int

	ControlState StreamControlStateConfig

	Logger  logrus.FieldLogger
	RPreset ResponsePreset

	// MessageGuard, when set, bounds incoming messages (livetape patch).
	MessageGuard MessageGuard

	// PayloadAllocator, when set, provides the buffers audio and video payloads are
	// read into (livetape patch).
	PayloadAllocator PayloadAllocator
}

func (cb *ConnConfig) normalize() *ConnConfig {
	c := ConnConfig(*cb)

	if c.Handler == nil {
		c.Handler = &DefaultHandler{}
	}

	if c.ReaderBufferSize == 0 {
		c.ReaderBufferSize = 4 * 1024 // 4KB (Default)
	}

	if c.WriterBufferSize == 0 {
		c.WriterBufferSize = 4 * 1024 // 4KB (Default)
	}

	c.ControlState = *c.ControlState.normalize()

	if c.Logger == nil {
		l := logrus.New()
		l.Out = ioutil.Discard

		c.Logger = l
	}

	return &c
}

func newConn(rwc io.ReadWriteCloser, config *ConnConfig) *Conn {
	if config == nil {
		config = &ConnConfig{}
	}
	config = config.normalize()

	conn := &Conn{
		rwc:     rwc,
		bufr:    bufio.NewReaderSize(rwc, config.ReaderBufferSize),
		bufw:    bufio.NewWriterSize(rwc, config.WriterBufferSize),
		handler: config.Handler,

		config: config,
		logger: config.Logger,
	}

	conn.streamer = NewChunkStreamer(conn.bufr, conn.bufw, &conn.config.ControlState)
	conn.streamer.logger = conn.logger
	conn.streamer.guard = conn.config.MessageGuard // livetape patch
	conn.streamer.alloc = conn.config.PayloadAllocator

	conn.streams = newStreams(conn)

	return conn
}

func (c *Conn) GetChunkStreamer() *ChunkStreamer {
	return c.streamer
}

func (c *Conn) Close() error {
	c.m.Lock()
	defer c.m.Unlock()

	if c.isClosed {
		return nil
	}
	c.isClosed = true

	if c.handler != nil {
		c.handler.OnClose()
	}

	var result error
	if c.streamer != nil {
		c.streamer.waitWriters()
		if err := c.streamer.Close(); err != nil {
			result = multierror.Append(result, err)
		}
	}

	if err := c.rwc.Close(); err != nil {
		result = multierror.Append(result, err)
	}

	return result
}

// LockWrites takes the connection's writes over (livetape patch): it returns once a
// chunk being written is complete and flushed, and go-rtmp writes nothing more until
// UnlockWrites (its writes wait, whole chunks, in its queue). The holder writes
// complete chunks to the underlying connection itself, with the chunk size of
// OutChunkSize, on chunk streams go-rtmp does not use, so that neither side's header
// compression refers to the other's chunks.
func (c *Conn) LockWrites() { c.streamer.wmu.Lock() }

// UnlockWrites gives the writes back to go-rtmp (livetape patch).
func (c *Conn) UnlockWrites() { c.streamer.wmu.Unlock() }

// SetReadBufferSize replaces the connection's read buffer by one of size bytes, keeping
// what the old one holds (livetape patch): connections start with a small buffer and
// a publisher, whose media comes in bulk, gets a larger one. Call it only from a
// handler (the connection's reader goroutine).
func (c *Conn) SetReadBufferSize(size int) {
	if c.bufr == nil || size <= c.bufr.Size() { // nil: handed off (releaseReader)
		return
	}
	held, _ := c.bufr.Peek(c.bufr.Buffered())
	var src io.Reader = c.rwc
	if len(held) > 0 {
		src = io.MultiReader(bytes.NewReader(bytes.Clone(held)), c.rwc)
	}
	c.bufr = bufio.NewReaderSize(src, size)
	c.streamer.r.reader = c.bufr
}

// OutChunkSize is the chunk size of what this side sends (livetape patch).
func (c *Conn) OutChunkSize() uint32 { return c.streamer.selfState.ChunkSize() }

func (c *Conn) Write(ctx context.Context, chunkStreamID int, timestamp uint32, cmsg *ChunkMessage) error {
	return c.streamer.Write(ctx, chunkStreamID, timestamp, cmsg)
}

// releaseReader lets go of the read side once the connection is handed off
// (ErrHandedOff, livetape patch): nothing reads it again.
func (c *Conn) releaseReader() {
	c.bufr = nil
	c.streamer.releaseReader()
}

func (c *Conn) handleMessageLoop() (err error) {
	defer func() {
		if r := recover(); r != nil {
			errTmp, ok := r.(error)
			if !ok {
				errTmp = errors.Errorf("Panic: %+v", r)
			}
			err = errors.WithStack(errTmp)
		}
	}()

	return c.runHandleMessageLoop()
}

// livetape patch: the loop reads until reading fails. It used to end as soon as the
// writer goroutine had (the streamer's Done), dropping what the peer had sent and was
// not read yet: a publisher that closes right after its last frames made the writes
// to it fail, and lost those frames.
func (c *Conn) runHandleMessageLoop() error {
	var cmsg ChunkMessage
	for {
		chunkStreamID, timestamp, err := c.streamer.Read(&cmsg)
		if err != nil {
			return err
		}

		err = c.handleMessage(chunkStreamID, timestamp, &cmsg)
		// livetape patch: the handled message and its payload are not kept until the
		// chunk stream's next message: a player's connect, createStream and play are
		// its last commands for hours (2 KiB a player).
		cmsg.Message = nil
		c.streamer.releaseReadBuffer(chunkStreamID)
		if err != nil {
			return err // Shutdown the connection
		}
	}
}

func (c *Conn) handleMessage(chunkStreamID int, timestamp uint32, cmsg *ChunkMessage) error {
	stream, err := c.streams.At(cmsg.StreamID)
	if err != nil {
		if c.config.IgnoreMessagesOnNotExistStream {
			c.logger.Warnf("Messages are received on not exist streams: StreamID = %d, MessageType = %T",
				cmsg.StreamID,
				cmsg.Message,
			)

			if c.ignoredMessages < c.config.IgnoreMessagesOnNotExistStreamThreshold {
				c.ignoredMessages++
				return nil
			}
		}

		return errors.Errorf("Specified stream is not created yet: StreamID = %d", cmsg.StreamID)
	}

	if err := stream.handle(chunkStreamID, timestamp, cmsg.Message); err != nil {
		switch err := err.(type) {
		case *message.UnknownDataBodyDecodeError, *message.UnknownCommandBodyDecodeError:
			// Ignore unknown messsage body
			c.logger.Warnf("Ignored unknown message body: Err = %+v", err)
			return nil
		}
		return err
	}

	return nil
}
