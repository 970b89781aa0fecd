package stream

import (
	"time"
)

// EndReason says why a push ended; callbacks report it as errcode/errmsg.
type EndReason string

// Reasons a push ends.
const (
	EndNormal      EndReason = "normal"      // the publisher unpublished
	EndInterrupted EndReason = "interrupted" // the connection broke
	EndIdle        EndReason = "idle"        // nothing received for IdleTimeout
	EndKicked      EndReason = "kicked"      // stopped by the server (shutdown, API)
)

// Publication describes one push: one publisher connection on one stream.
type Publication struct {
	// PushID identifies this push (unique per publisher connection); recordings of one
	// push share it.
	PushID string
	// BroadcastID is the broadcast this push belongs to: the pushes of one stream
	// separated by less than the reconnect window. A push that starts a broadcast
	// names it after itself.
	BroadcastID string
	// BroadcastPush numbers this push within its broadcast, from 1.
	BroadcastPush int
	Params        *PushParams
	ClientAddr    string
	// ClientApp is the publisher's software as RTMP connect's flashVer names it
	// ("FMLE/3.0 (compatible; Lavf61.7.100)"), bounded to 128 bytes.
	ClientApp string
	Started   time.Time
	// Stream is the live stream; observers may Subscribe to it in PublishStarted.
	Stream *Stream
}

// Observer is told about pushes. Calls are made synchronously from the publisher's
// connection and must return quickly.
type Observer interface {
	PublishStarted(p *Publication)
	PublishEnded(p *Publication, reason EndReason, ended time.Time)
}
