package live

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/stream"
)

// These tests drive livetape with the real clients: ffmpeg pushes, ffprobe and plain
// HTTP read what viewers get.

type testServer struct {
	*Server
	rtmpAddr string
	httpURL  string
	logs     *mediatest.SyncBuffer
}

func startServer(t testing.TB, mutate func(*Config), observers ...stream.Observer) *testServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RTMPAddr = "127.0.0.1:0"
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &mediatest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := NewServer(cfg, log, observers...)
	ln, err := net.Listen("tcp", cfg.RTMPAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeRTMP(ctx, ln) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		cancel()
		<-done
		hs.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &testServer{Server: srv, rtmpAddr: ln.Addr().String(), httpURL: hs.URL, logs: logs}
}

// waitLive waits until app/id is live and has a keyframe cached.
func (s *testServer) waitLive(t testing.TB, app, id string) *stream.Stream {
	t.Helper()
	var st *stream.Stream
	waitFor(t, app+"/"+id+" to be live", 15*time.Second, func() bool {
		st = s.hub.Lookup(app, id)
		if st == nil {
			return false
		}
		gop, _, audio, _ := st.Cached()
		return gop && audio
	})
	return st
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func httpGetBytes(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// Shorthands for the shared media test helpers.
var (
	needFFmpeg = mediatest.NeedFFmpeg
	push       = mediatest.Push
	waitFor    = mediatest.WaitFor
	probe      = mediatest.ProbeLive
)
