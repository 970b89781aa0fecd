//
// Copyright (c) 2018- yutopp (yutopp@gmail.com)
//
// Distributed under the Boost Software License, Version 1.0. (See accompanying
// file LICENSE_1_0.txt or copy at  https://www.boost.org/LICENSE_1_0.txt)
//

package rtmp

import (
	"bytes"

	"github.com/yutopp/go-rtmp/message"
)

type ChunkStreamReader struct {
	basicHeader   chunkBasicHeader
	messageHeader chunkMessageHeader

	timestamp       uint32
	timestampDelta  uint32
	messageLength   uint32 // max, 24bits
	messageTypeID   byte
	messageStreamID uint32

	buf       bytes.Buffer
	completed bool

	// livetape patch: an audio or video message read into a buffer from the
	// PayloadAllocator: direct[directOff:directOff+directLen], filled bytes so far; the
	// payload and message handed to the handler are reused for the next one.
	direct    []byte
	directOff int
	directLen uint32
	directTyp byte
	filled    int
	payload   Payload
	audioMsg  message.AudioMessage
	videoMsg  message.VideoMessage
}

func (r *ChunkStreamReader) Read(b []byte) (int, error) {
	return r.buf.Read(b)
}
