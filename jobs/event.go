package jobs

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/livetape/livetape/storage/catalog"
)

// EventType says what an [Event] reports. The values below 300 are the
// Tencent Cloud LVB ones, so receivers written for it keep working; livetape's
// own jobs use 300 and up.
type EventType int

const (
	// EventPushEnded (0): a publisher stopped pushing. ErrCode/ErrMsg say
	// why (see [PushEndReason]); StreamParam and ClientIP repeat the push.
	EventPushEnded EventType = 0
	// EventPushStarted (1): a publisher started pushing, with its push
	// parameters (StreamParam) and address (ClientIP).
	EventPushStarted EventType = 1
	// EventRecordingReady (100): a recorded file (one fragment in one
	// format) is stored and playable at VideoURL. Sent after the upload.
	EventRecordingReady EventType = 100
	// EventSnapshot (200): a snapshot (a recording's JPEG poster) is stored:
	// PicURL is its storage key, PicFullURL where to fetch it, FileID the
	// recording it was taken from, Width/Height/FileSize/CreateTime the picture.
	EventSnapshot EventType = 200
	// EventStitchDone (300): a stitch job joined several fragments into one
	// file; the file fields describe the result, ErrCode/ErrMsg are 0/"ok"
	// on success and say what went wrong otherwise.
	EventStitchDone EventType = 300
	// EventTranscodeDone (301): a transcode job produced a file from a
	// recording (one event per output: an MP4 rendition, or an HLS ABR set whose
	// video_url is the master playlist); fields as for EventStitchDone, plus
	// SourceFileID, Template, Width, Height and Bitrate.
	EventTranscodeDone EventType = 301
	// EventBroadcastEnded (302): a broadcast ended: no push of its stream came within
	// the reconnect window after its last push ended. BroadcastID names it (its entry
	// is GET /api/v1/broadcasts/{broadcast_id}); StartTime and EndTime are the start of
	// its first push and the end of its last, Duration the time pushed in seconds
	// (gaps left out), Pushes the number of pushes.
	EventBroadcastEnded EventType = 302
)

// PushEndReason is the errcode of an [EventPushEnded]; its String is the
// errmsg sent with it.
type PushEndReason int

const (
	// PushEndNormal: the publisher closed the stream itself.
	PushEndNormal PushEndReason = 0
	// PushEndInterrupted: the connection broke (network error, the
	// publisher vanished without closing).
	PushEndInterrupted PushEndReason = 1
	// PushEndIdle: the publisher sent no media for the idle timeout and was
	// dropped.
	PushEndIdle PushEndReason = 2
	// PushEndKicked: livetape ended the push (API call, shutdown).
	PushEndKicked PushEndReason = 3
	// PushEndServerCrashed: livetape stopped without ending the push (a crash,
	// kill -9, power loss); the event is sent when it starts again.
	PushEndServerCrashed PushEndReason = 4
)

// String returns the errmsg of the reason: "normal", "interrupted", "idle",
// "kicked", "server crashed".
func (r PushEndReason) String() string {
	switch r {
	case PushEndNormal:
		return "normal"
	case PushEndInterrupted:
		return "interrupted"
	case PushEndIdle:
		return "idle"
	case PushEndKicked:
		return "kicked"
	case PushEndServerCrashed:
		return "server crashed"
	}
	return "reason " + strconv.Itoa(int(r))
}

// EventID derives the stable id of an event from its type and the id of
// what it is about: the file id for 100/300/301, the stream id and push
// session for 0/1. Receivers drop events whose id they have seen, which is
// what makes at-least-once delivery harmless.
func EventID(t EventType, key string) string {
	return strconv.Itoa(int(t)) + "-" + key
}

// Event is the JSON body POSTed to every callback URL. Field names are the
// Tencent Cloud LVB callback's (channel_id, stream_id, event_type, file_id,
// …), so receivers written for it read ours. Which fields appear depends on
// the event type: push events (0, 1) carry the push fields, file events (100,
// 300, 301) always carry every file field, even when zero; any other field is
// sent only when set.
//
// Receivers decode it with encoding/json into this struct, check it with
// [VerifyCallback], and drop duplicates by EventID.
type Event struct {
	// ChannelID (channel_id) is the stream's channel; livetape has one
	// channel per stream, so it equals StreamID (LVB kept both).
	ChannelID string `json:"channel_id"`
	// StreamID (stream_id) is the live stream id from the push URL
	// (rtmp://host/APP/STREAM_ID).
	StreamID string `json:"stream_id"`
	// App (app) is the application part of the push URL, "live" by default.
	App string `json:"app"`
	// EventType (event_type) says what happened; see the EventType constants.
	EventType EventType `json:"event_type"`
	// EventID (event_id) identifies the event across retries and
	// redeliveries (see [EventID]); the same id is also in the
	// X-Livetape-Event-Id header.
	EventID string `json:"event_id"`
	// T (t) is the UNIX time, in seconds, after which the callback must be
	// refused: the send time plus 600 s. It is set on every attempt, so a
	// retry a day later is still fresh.
	T int64 `json:"t"`
	// Sign (sign) is lowercase hex MD5(CALLBACK_KEY + t), t in decimal: the
	// LVB signature. It proves the sender knows the key but does not cover
	// the body; the X-Livetape-Signature header does.
	Sign string `json:"sign"`

	// FileID (file_id) identifies the recorded file; it is also the key of
	// the recording in the recordings API.
	FileID string `json:"file_id,omitempty"`
	// FileFormat (file_format) is the container: "mp4", "flv" or "hls".
	FileFormat string `json:"file_format,omitempty"`
	// FileSize (file_size) is the size of the file in bytes (for HLS the
	// playlist and all its segments).
	FileSize int64 `json:"file_size,omitempty"`
	// StartTime (start_time) is the UNIX time, in seconds, of the file's
	// first frame.
	StartTime int64 `json:"start_time,omitempty"`
	// EndTime (end_time) is the UNIX time, in seconds, of the file's last
	// frame.
	EndTime int64 `json:"end_time,omitempty"`
	// Duration (duration) is the media duration of the file in seconds,
	// possibly fractional.
	Duration float64 `json:"duration,omitempty"`
	// VideoID (video_id) is the id of the stored object (its storage key).
	VideoID string `json:"video_id,omitempty"`
	// VideoURL (video_url) is where players fetch the replay: livetape's
	// /vod/ URL under its public base URL, or the bucket's.
	VideoURL string `json:"video_url,omitempty"`
	// StreamParam (stream_param) is the query string of the push URL
	// (record, record_interval and any custom parameter) without the push
	// credentials txSecret and txTime, which are never sent.
	StreamParam string `json:"stream_param,omitempty"`
	// ErrCode (errcode) is why a push ended ([PushEndReason]) or, for job
	// events, 0 on success and non-zero on failure.
	ErrCode int `json:"errcode,omitempty"`
	// ErrMsg (errmsg) is the text of ErrCode: "normal", "interrupted",
	// "idle", "kicked" for push ends.
	ErrMsg string `json:"errmsg,omitempty"`
	// ClientIP (client_ip) is the publisher's IP address (push events).
	ClientIP string `json:"client_ip,omitempty"`

	// JobID (job_id) is the job that made the file (events 300, 301), as
	// POST /api/v1/stitch answered it.
	JobID string `json:"job_id,omitempty"`
	// BroadcastID (broadcast_id) is the broadcast the file belongs to.
	BroadcastID string `json:"broadcast_id,omitempty"`

	// SourceFileID (source_file_id) is the recording a rendition was made from
	// (event 301).
	SourceFileID string `json:"source_file_id,omitempty"`
	// Template (template) is the transcode template of a rendition ("abr" for an
	// ABR set) (event 301), or of a stitch made by transcoding (300).
	Template string `json:"template,omitempty"`
	// Width and Height (width, height) are the picture size of a rendition
	// (event 301; the highest variant of an ABR set), of a stitch made by
	// transcoding (300) or of a snapshot (200).
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
	// Bitrate (bitrate) is a rendition's average bits/s, audio and video (301).
	Bitrate int64 `json:"bitrate,omitempty"`
	// PicURL (pic_url) is the storage key of a snapshot, PicFullURL
	// (pic_full_url) its URL (event 200, as in LVB).
	PicURL     string `json:"pic_url,omitempty"`
	PicFullURL string `json:"pic_full_url,omitempty"`
	// CreateTime (create_time) is the UNIX time a snapshot was taken (200).
	CreateTime int64 `json:"create_time,omitempty"`
	// Pushes (pushes) is the number of pushes of a broadcast (302).
	Pushes int `json:"pushes,omitempty"`
	// Stitch (stitch) says how a stitch was made (300): "remux" (the inputs' own
	// samples) or "transcode" (the inputs differed in codec configuration and were
	// transcoded to Template first).
	Stitch string `json:"stitch,omitempty"`
}

// wireEvent fixes which fields of an Event are always present: a pointer
// field is sent when non-nil, even if it points to a zero value.
type wireEvent struct {
	ChannelID   string    `json:"channel_id"`
	StreamID    string    `json:"stream_id"`
	App         string    `json:"app"`
	EventType   EventType `json:"event_type"`
	EventID     string    `json:"event_id"`
	T           int64     `json:"t"`
	Sign        string    `json:"sign"`
	FileID      *string   `json:"file_id,omitempty"`
	FileFormat  *string   `json:"file_format,omitempty"`
	FileSize    *int64    `json:"file_size,omitempty"`
	StartTime   *int64    `json:"start_time,omitempty"`
	EndTime     *int64    `json:"end_time,omitempty"`
	Duration    *float64  `json:"duration,omitempty"`
	VideoID     *string   `json:"video_id,omitempty"`
	VideoURL    *string   `json:"video_url,omitempty"`
	StreamParam *string   `json:"stream_param,omitempty"`
	ErrCode     *int      `json:"errcode,omitempty"`
	ErrMsg      *string   `json:"errmsg,omitempty"`
	ClientIP    *string   `json:"client_ip,omitempty"`
	JobID       string    `json:"job_id,omitempty"`
	BroadcastID string    `json:"broadcast_id,omitempty"`

	SourceFileID *string `json:"source_file_id,omitempty"`
	Template     *string `json:"template,omitempty"`
	Width        *int    `json:"width,omitempty"`
	Height       *int    `json:"height,omitempty"`
	Bitrate      *int64  `json:"bitrate,omitempty"`
	PicURL       *string `json:"pic_url,omitempty"`
	PicFullURL   *string `json:"pic_full_url,omitempty"`
	CreateTime   *int64  `json:"create_time,omitempty"`
	Pushes       *int    `json:"pushes,omitempty"`
	Stitch       string  `json:"stitch,omitempty"`
}

// MarshalJSON writes the fields of the event's type always, and any other
// field only when set, so that a receiver of event 100 can rely on every LVB
// field being there (errcode 0 of a normal push end must not vanish either).
func (e Event) MarshalJSON() ([]byte, error) {
	w := wireEvent{
		ChannelID: e.ChannelID,
		StreamID:  e.StreamID,
		App:       e.App,
		EventType: e.EventType,
		EventID:   e.EventID,
		T:         e.T,
		Sign:      e.Sign,
		// Set by the jobs that make files; absent from the LVB events.
		JobID:       e.JobID,
		BroadcastID: e.BroadcastID,
	}
	var file, push, result, rendition, snapshot, broadcast bool
	switch e.EventType {
	case EventPushStarted:
		push = true
	case EventPushEnded:
		push, result = true, true
	case EventRecordingReady:
		file = true
	case EventStitchDone:
		file, result = true, true
	case EventTranscodeDone:
		file, result, rendition = true, true, true
	case EventSnapshot:
		snapshot = true
	case EventBroadcastEnded:
		broadcast = true
	}
	w.FileID = ptrIf(e.FileID, file)
	w.FileFormat = ptrIf(e.FileFormat, file)
	w.FileSize = ptrIf(e.FileSize, file || snapshot)
	w.StartTime = ptrIf(e.StartTime, file || broadcast)
	w.EndTime = ptrIf(e.EndTime, file || broadcast)
	w.Duration = ptrIf(e.Duration, file || broadcast)
	w.VideoID = ptrIf(e.VideoID, file)
	w.VideoURL = ptrIf(e.VideoURL, file)
	// Events stored by older versions may still carry the push credentials.
	w.StreamParam = ptrIf(catalog.PublicStreamParam(e.StreamParam), file || push)
	w.ErrCode = ptrIf(e.ErrCode, result)
	w.ErrMsg = ptrIf(e.ErrMsg, result)
	w.ClientIP = ptrIf(e.ClientIP, false)
	w.SourceFileID = ptrIf(e.SourceFileID, rendition)
	w.Template = ptrIf(e.Template, rendition)
	w.Width = ptrIf(e.Width, rendition || snapshot)
	w.Height = ptrIf(e.Height, rendition || snapshot)
	w.Bitrate = ptrIf(e.Bitrate, rendition)
	w.PicURL = ptrIf(e.PicURL, snapshot)
	w.PicFullURL = ptrIf(e.PicFullURL, snapshot)
	w.CreateTime = ptrIf(e.CreateTime, snapshot)
	w.Pushes = ptrIf(e.Pushes, broadcast)
	w.Stitch = e.Stitch
	return json.Marshal(w)
}

// ptrIf returns &v when the field must be sent (always, or because it is set).
func ptrIf[T comparable](v T, always bool) *T {
	var zero T
	if !always && v == zero {
		return nil
	}
	return &v
}

// Callback headers.
const (
	// HeaderSignature carries "sha256=" + lowercase hex
	// HMAC-SHA256(CALLBACK_KEY, t + "." + body), t in decimal as in the
	// body. Unlike sign it covers the whole body.
	HeaderSignature = "X-Livetape-Signature"
	// HeaderEventID repeats the body's event_id, so that a receiver can
	// drop a duplicate before parsing.
	HeaderEventID = "X-Livetape-Event-Id"
)

// signTTL is how long a callback stays valid after it is sent (the seed's t).
const signTTL = 600 * time.Second

// Errors of [VerifyCallback]. Any other error means a malformed request.
var (
	// ErrCallbackSignature: sign or the HMAC does not match the key.
	ErrCallbackSignature = errors.New("jobs: callback signature does not match")
	// ErrCallbackExpired: t is in the past; a replayed or very late request.
	ErrCallbackExpired = errors.New("jobs: callback expired")
)

// lvbSign is the seed's sign: lowercase hex MD5(key + t).
func lvbSign(key string, t int64) string {
	sum := md5.Sum([]byte(key + strconv.FormatInt(t, 10)))
	return hex.EncodeToString(sum[:])
}

// bodySignature is the X-Livetape-Signature value of body.
func bodySignature(key string, t int64, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(strconv.FormatInt(t, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// signEvent sets t and sign for a send at now and returns the body and the
// X-Livetape-Signature value.
func signEvent(key string, ev Event, now time.Time) (body []byte, signature string, err error) {
	ev.T = now.Add(signTTL).Unix()
	ev.Sign = lvbSign(key, ev.T)
	body, err = json.Marshal(ev)
	if err != nil {
		return nil, "", fmt.Errorf("jobs: encode event %s: %w", ev.EventID, err)
	}
	return body, bodySignature(key, ev.T, body), nil
}

// VerifyCallback checks a callback request as a receiver should: the body's
// sign is MD5(key + t), t is not before now, the X-Livetape-Signature header
// is the HMAC of t and the body, and X-Livetape-Event-Id (when present)
// matches the body's event_id. It returns nil, an error wrapping
// [ErrCallbackSignature] or [ErrCallbackExpired], or an error about a
// malformed request.
func VerifyCallback(key string, body []byte, header http.Header, now time.Time) error {
	var ev struct {
		T       *int64 `json:"t"`
		Sign    string `json:"sign"`
		EventID string `json:"event_id"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return fmt.Errorf("jobs: verify callback: %w", err)
	}
	if ev.T == nil {
		return errors.New("jobs: verify callback: no t in the body")
	}
	want := lvbSign(key, *ev.T)
	if subtle.ConstantTimeCompare([]byte(strings.ToLower(ev.Sign)), []byte(want)) != 1 {
		return fmt.Errorf("jobs: verify callback: sign: %w", ErrCallbackSignature)
	}
	got := header.Get(HeaderSignature)
	if got == "" {
		return fmt.Errorf("jobs: verify callback: no %s header: %w", HeaderSignature, ErrCallbackSignature)
	}
	if !hmac.Equal([]byte(strings.ToLower(got)), []byte(bodySignature(key, *ev.T, body))) {
		return fmt.Errorf("jobs: verify callback: %s: %w", HeaderSignature, ErrCallbackSignature)
	}
	if now.Unix() > *ev.T {
		return fmt.Errorf("jobs: verify callback: t %d is %v in the past: %w",
			*ev.T, now.Sub(time.Unix(*ev.T, 0)).Truncate(time.Second), ErrCallbackExpired)
	}
	if id := header.Get(HeaderEventID); id != "" && id != ev.EventID {
		return fmt.Errorf("jobs: verify callback: %s %q differs from event_id %q", HeaderEventID, id, ev.EventID)
	}
	return nil
}
