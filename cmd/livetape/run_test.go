package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

func TestRunCommandLine(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		usage      bool     // a usage error (exit status 2)
		wantErr    []string // error substrings; nil means success
		wantStdout []string
	}{
		{name: "no command", args: nil, usage: true, wantErr: []string{"no command"}},
		{name: "unknown command", args: []string{"frobnicate"}, usage: true, wantErr: []string{`"frobnicate"`}},
		{name: "help", args: []string{"help"}, wantStdout: []string{"serve", "worker", "sign", "version"}},
		{name: "help worker", args: []string{"help", "worker"}, wantStdout: []string{"-config", "-node-id"}},
		{name: "worker without redis", args: []string{"worker"}, wantErr: []string{"worker", "LIVETAPE_REDIS_ADDR", "embedded"}},
		{name: "serve --no-worker without redis", args: []string{"serve", "--no-worker"}, wantErr: []string{"no_worker", "LIVETAPE_REDIS_ADDR"}},
		{name: "no_worker from env without redis", args: []string{"serve"}, env: map[string]string{"LIVETAPE_NO_WORKER": "true"}, wantErr: []string{"no_worker", "LIVETAPE_REDIS_ADDR"}},
		{name: "bad node id", args: []string{"worker"}, env: map[string]string{"LIVETAPE_NODE_ID": "a/b", "LIVETAPE_REDIS_ADDR": "127.0.0.1:1"}, wantErr: []string{"node_id", `"a/b"`}},
		{name: "--help", args: []string{"--help"}, wantStdout: []string{"Usage: livetape"}},
		{name: "help serve", args: []string{"help", "serve"}, wantStdout: []string{"-config", "-rtmp-addr", "-http-addr", "-data-dir", "-log-level", "-log-format"}},
		{name: "help sign", args: []string{"help", "sign"}, wantStdout: []string{"-stream", "-play-key", "-record-type"}},
		{name: "help unknown", args: []string{"help", "x"}, usage: true, wantErr: []string{`"x"`}},
		{name: "serve -h", args: []string{"serve", "-h"}, wantStdout: []string{"-rtmp-addr"}},
		{name: "version", args: []string{"version"}, wantStdout: []string{"livetape ", "go1."}},
		{name: "version extra", args: []string{"version", "x"}, usage: true, wantErr: []string{`"x"`}},
		{name: "serve unknown flag", args: []string{"serve", "--bogus"}, usage: true, wantErr: []string{"serve", "bogus"}},
		{name: "serve stray argument", args: []string{"serve", "now"}, usage: true, wantErr: []string{`"now"`}},
		{
			name:    "serve bad config",
			args:    []string{"serve", "--log-level", "loud", "--http-addr", "nocolon"},
			env:     map[string]string{"LIVETAPE_IDLE_TIMEOUT": "abc"},
			wantErr: []string{"log.level", "http_addr", "LIVETAPE_IDLE_TIMEOUT"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := runEnv(context.Background(), tt.args, mapEnv(tt.env), &stdout, &stderr)
			if tt.wantErr == nil && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != nil && err == nil {
				t.Fatalf("no error, want one mentioning %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if err != nil {
				if got := errors.As(err, new(usageError)); got != tt.usage {
					t.Errorf("usage error = %v, want %v (%v)", got, tt.usage, err)
				}
			}
			for _, w := range tt.wantStdout {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout does not contain %q:\n%s", w, stdout.String())
				}
			}
		})
	}
}

// TestServeStopsOnCancel runs serve on free ports with a push and an HTTP-FLV viewer,
// cancels its context, and expects serve to return nil, the viewer's stream to end,
// and both ports to be closed.
func TestServeStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	var stdout bytes.Buffer
	stderr := &mediatest.SyncBuffer{} // serve logs from many goroutines
	go func() {
		done <- runEnv(ctx, []string{"serve", "--rtmp-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
			"--data-dir", t.TempDir(), "--log-format", "json"}, mapEnv(nil), &stdout, stderr)
	}()
	var rtmpAddr, httpAddr string
	mediatest.WaitFor(t, "serve to log its listening addresses", 10*time.Second, func() bool {
		rtmpAddr, httpAddr = loggedAddr(stderr.String(), "rtmp listening"), loggedAddr(stderr.String(), "http listening")
		return rtmpAddr != "" && httpAddr != ""
	})

	pub := mediatest.PublishRTMP(t, "rtmp://"+rtmpAddr+"/live/stop")
	for _, p := range mediatest.ReadFLV(t, filepath.Join("..", "..", "testdata", "av.flv")) {
		if err := pub.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	var viewer *http.Response
	mediatest.WaitFor(t, "the stream to play over HTTP-FLV", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + httpAddr + "/live/stop.flv")
		if err != nil {
			return false
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return false
		}
		viewer = resp
		return true
	})
	defer viewer.Body.Close()
	viewerEnded := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, viewer.Body)
		viewerEnded <- err
	}()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v after cancel, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not return after cancel")
	}
	select {
	case <-viewerEnded:
	case <-time.After(10 * time.Second):
		t.Error("the HTTP-FLV viewer still receives after serve returned")
	}
	for _, addr := range []string{rtmpAddr, httpAddr} {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after serve returned", addr)
		}
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Errorf("shutdown not logged:\n%s", stderr)
	}
}

// loggedAddr returns the "addr" attribute of the first JSON log line with message msg.
func loggedAddr(logs, msg string) string {
	for line := range strings.Lines(logs) {
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == msg {
			return rec.Addr
		}
	}
	return ""
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(LogConfig{Level: "WARN", Format: "json"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), `"msg":"shown"`) {
		t.Errorf("log output %q", buf.String())
	}
	if _, err := newLogger(LogConfig{Level: "info", Format: "xml"}, &buf); err == nil {
		t.Error("format xml accepted")
	}
}
