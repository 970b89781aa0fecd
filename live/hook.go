package live

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/livetape/livetape/stream"
)

// hookReasonMax bounds the part of a refusing receiver's body that goes into the RTMP
// status description (and the log).
const hookReasonMax = 200

// publishHook asks the on_publish URL whether a push may start (SRS's on_publish,
// nginx-rtmp's on_publish): POST JSON, 2xx accepts, anything else (or no answer
// within the timeout) refuses, with the receiver's body as the reason.
type publishHook struct {
	url    string
	nodeID string
	client *http.Client
	log    *slog.Logger
}

// PublishHookRequest is the JSON livetape POSTs to on_publish.
type PublishHookRequest struct {
	App      string `json:"app"`
	Stream   string `json:"stream"`
	ClientIP string `json:"client_ip"`
	// Params is the push URL's query without txSecret and txTime.
	Params string `json:"params"`
	NodeID string `json:"node_id"`
}

func newPublishHook(cfg Config, log *slog.Logger) *publishHook {
	return &publishHook{
		url: cfg.OnPublish, nodeID: cfg.NodeID, log: log.With("hook", "on_publish"),
		client: &http.Client{
			Timeout:       cfg.OnPublishTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// ask POSTs the push to the hook; nil means accepted.
func (h *publishHook) ask(params *stream.PushParams, clientAddr string) error {
	host, _, err := net.SplitHostPort(clientAddr)
	if err != nil {
		host = clientAddr
	}
	body, _ := json.Marshal(PublishHookRequest{
		App: params.App, Stream: params.StreamID, ClientIP: host, Params: params.StreamParam(), NodeID: h.nodeID,
	})
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("on_publish: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			h.log.Warn("push refused: on_publish did not answer in time", "stream", params.Key(), "timeout", h.client.Timeout)
			return fmt.Errorf("on_publish did not answer within %v", h.client.Timeout)
		}
		h.log.Warn("push refused: on_publish unreachable", "stream", params.Key(), "err", err)
		return errors.New("on_publish unreachable")
	}
	defer resp.Body.Close()
	reason, _ := io.ReadAll(io.LimitReader(resp.Body, hookReasonMax))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode/100 == 2 {
		return nil
	}
	msg := cleanReason(reason)
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	h.log.Warn("push refused by on_publish", "stream", params.Key(), "status", resp.StatusCode, "reason", msg)
	return fmt.Errorf("refused by on_publish (%d): %s", resp.StatusCode, msg)
}

// cleanReason makes a receiver's body fit an RTMP status line: valid UTF-8, one line,
// no control characters.
func cleanReason(b []byte) string {
	s := strings.ToValidUTF8(string(b), "") // a cut multi-byte character goes too
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s))
}
