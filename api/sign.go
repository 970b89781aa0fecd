package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/livetape/livetape/live/sign"
	"github.com/livetape/livetape/stream"
)

// SignConfig is what POST /api/v1/sign signs with: the server's push key, its play key
// (none leaves play URLs unsigned) and the RTMP port broadcasters reach.
type SignConfig struct {
	PushKey  string
	PlayKey  string
	RTMPPort int
}

// SignRequest is the body of POST /api/v1/sign. TTL is in seconds (default one day);
// Record is "mp4|hls|flv" as in the push URL; RecordInterval in seconds (0: the
// server's).
type SignRequest struct {
	App            string `json:"app"`
	StreamID       string `json:"stream_id"`
	TTL            int64  `json:"ttl"`
	Record         string `json:"record"`
	RecordInterval int    `json:"record_interval"`
}

// SignedURLs is the answer of POST /api/v1/sign.
type SignedURLs struct {
	Push     string    `json:"push"`
	PlayFLV  string    `json:"play_flv"`
	PlayHLS  string    `json:"play_hls"`
	PlayRTMP string    `json:"play_rtmp"`
	Expires  time.Time `json:"expires"`
}

const (
	maxSignBody    = 4 << 10
	defaultSignTTL = 24 * 3600
	maxSignTTL     = 366 * 24 * 3600
)

// postSign signs a push URL (and the play URLs) for the console's push-URL generator,
// as `livetape sign` does. The URLs name the host the request reached, so an operator
// gets URLs that work from where they are.
func (a *apiHandler) postSign(w http.ResponseWriter, r *http.Request) {
	if a.cfg.Sign.PushKey == "" {
		writeError(w, http.StatusConflict, "no push key configured (LIVETAPE_PUSH_KEY or live.push_key): pushes are not signed")
		return
	}
	var req SignRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSignBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		a.cfg.Log.Warn("api: sign refused", "client", r.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, "bad sign request: "+err.Error()+
			` (want JSON {"app","stream_id","ttl":SECONDS,"record":"mp4|hls","record_interval":SECONDS})`)
		return
	}
	if req.App == "" {
		req.App = "live"
	}
	if req.TTL == 0 {
		req.TTL = defaultSignTTL
	}
	if err := validSignRequest(req); err != nil {
		a.cfg.Log.Warn("api: sign refused", "client", r.RemoteAddr, "err", err)
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if req.Record != "" { // "MP4 | hls" is written as the server reads it: "mp4|hls"
		formats, _ := stream.ParseRecordFormats(req.Record)
		req.Record = strings.Join(formats, "|")
	}
	host := r.Host
	hostname, _, err := net.SplitHostPort(host)
	if err != nil { // no port: the scheme's default
		hostname = strings.Trim(host, "[]")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	expiry := time.Now().Add(time.Duration(req.TTL) * time.Second)
	rtmpBase := "rtmp://" + net.JoinHostPort(hostname, strconv.Itoa(a.cfg.Sign.RTMPPort)) + "/" + req.App + "/" + req.StreamID
	httpBase := scheme + "://" + host + "/" + req.App + "/" + req.StreamID

	// Written by hand, as `livetape sign` does: record keeps its literal "|".
	push := rtmpBase + "?" + signedQuery(a.cfg.Sign.PushKey, req.StreamID, expiry)
	if req.Record != "" {
		push += "&record=" + req.Record
	}
	if req.RecordInterval != 0 {
		push += "&record_interval=" + strconv.Itoa(req.RecordInterval)
	}
	play := ""
	if a.cfg.Sign.PlayKey != "" {
		play = "?" + signedQuery(a.cfg.Sign.PlayKey, req.StreamID, expiry)
	}
	a.cfg.Log.Info("api: push URL signed", "client", r.RemoteAddr, "app", req.App, "stream_id", req.StreamID, "expires", expiry.UTC())
	writeJSON(w, http.StatusOK, SignedURLs{Push: push, PlayFLV: httpBase + ".flv" + play, PlayHLS: httpBase + ".m3u8" + play,
		PlayRTMP: rtmpBase + play, Expires: expiry.UTC().Truncate(time.Second)})
}

// validSignRequest checks req as the server will check the push.
func validSignRequest(req SignRequest) error {
	var errs []error
	if err := stream.ValidStreamID(req.StreamID); err != nil {
		errs = append(errs, fmt.Errorf("stream_id: %w", err))
	}
	if err := stream.ValidStreamID(req.App); err != nil {
		errs = append(errs, fmt.Errorf("app: %w", err))
	}
	if req.TTL < 1 || req.TTL > maxSignTTL {
		errs = append(errs, fmt.Errorf("ttl %d: seconds, 1..%d", req.TTL, maxSignTTL))
	}
	if req.Record != "" {
		if _, err := stream.ParseRecordFormats(req.Record); err != nil {
			errs = append(errs, fmt.Errorf("record: %w", err))
		}
	}
	if req.RecordInterval < 0 || req.RecordInterval > stream.MaxRecordInterval {
		errs = append(errs, fmt.Errorf("record_interval %d: seconds, 1..%d", req.RecordInterval, stream.MaxRecordInterval))
	}
	return errors.Join(errs...)
}

// signedQuery returns "txSecret=…&txTime=…" for streamID.
func signedQuery(key, streamID string, expiry time.Time) string {
	q := sign.Query(key, streamID, expiry)
	return "txSecret=" + q.Get("txSecret") + "&txTime=" + q.Get("txTime")
}
