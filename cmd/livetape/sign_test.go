package main

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/live/sign"
)

// runSign runs `livetape sign args…` with env and returns the labeled URLs it printed.
func runSign(t *testing.T, env map[string]string, args ...string) (map[string]string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := runEnv(context.Background(), append([]string{"sign"}, args...), mapEnv(env), &stdout, &stderr)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	for line := range strings.Lines(stdout.String()) {
		label, u, ok := strings.Cut(strings.TrimSuffix(line, "\n"), ": ")
		if !ok {
			t.Fatalf("line %q has no label", line)
		}
		out[label] = u
	}
	return out, nil
}

// verifyURL checks that raw is signed for streamID with key and expires about at expiry.
func verifyURL(t *testing.T, raw, key, streamID string, expiry time.Time) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	q := u.Query()
	if err := sign.Verify([]string{key}, streamID, q.Get("txSecret"), q.Get("txTime"), time.Now()); err != nil {
		t.Errorf("%s: %v", raw, err)
	}
	if err := sign.Verify([]string{key}, streamID, q.Get("txSecret"), q.Get("txTime"), expiry.Add(time.Minute)); !errors.Is(err, sign.ErrExpired) {
		t.Errorf("%s: a minute after the expected expiry: %v, want ErrExpired", raw, err)
	}
	return q
}

func TestSignPushURL(t *testing.T) {
	start := time.Now()
	got, err := runSign(t, nil, "--stream", "demo_1", "--key", "secret", "--ttl", "2h",
		"--record", "mp4|hls", "--interval", "600", "--record-type", "audio", "--host", "tape.example.com")
	if err != nil {
		t.Fatal(err)
	}
	push := got["push"]
	if !strings.HasPrefix(push, "rtmp://tape.example.com:1935/live/demo_1?txSecret=") {
		t.Errorf("push %q", push)
	}
	q := verifyURL(t, push, "secret", "demo_1", start.Add(2*time.Hour))
	if q.Get("record") != "mp4|hls" || q.Get("record_interval") != "600" || q.Get("record_type") != "audio" {
		t.Errorf("push %q: record parameters %v", push, q)
	}
	// Parameters in this order, with a literal "|".
	wantTail := "&txTime=" + q.Get("txTime") + "&record=mp4|hls&record_interval=600&record_type=audio"
	if !strings.HasSuffix(push, wantTail) {
		t.Errorf("push %q does not end in %q", push, wantTail)
	}

	want := map[string]string{
		"play-flv":  "http://tape.example.com:8080/live/demo_1.flv",
		"play-hls":  "http://tape.example.com:8080/live/demo_1.m3u8",
		"play-rtmp": "rtmp://tape.example.com:1935/live/demo_1",
	}
	for label, w := range want {
		if got[label] != w {
			t.Errorf("%s = %q, want %q (no play key: unsigned)", label, got[label], w)
		}
	}
	if len(got) != 4 {
		t.Errorf("printed %d URLs, want 4: %v", len(got), got)
	}
}

func TestSignFromConfigAndEnv(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "livetape.yaml")
	if err := os.WriteFile(cfgFile, []byte("http_addr: \":9080\"\nlive:\n  rtmp_addr: \":2935\"\n  push_key: filekey\n  play_key: fileplay\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()

	t.Run("config file", func(t *testing.T) {
		got, err := runSign(t, nil, "--config", cfgFile, "--stream", "s", "--app", "show")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got["push"], "rtmp://localhost:2935/show/s?") || strings.Contains(got["push"], "record") {
			t.Errorf("push %q", got["push"])
		}
		verifyURL(t, got["push"], "filekey", "s", start.Add(24*time.Hour))
		for label, prefix := range map[string]string{
			"play-flv":  "http://localhost:9080/show/s.flv?txSecret=",
			"play-hls":  "http://localhost:9080/show/s.m3u8?txSecret=",
			"play-rtmp": "rtmp://localhost:2935/show/s?txSecret=",
		} {
			if !strings.HasPrefix(got[label], prefix) {
				t.Errorf("%s = %q, want prefix %q", label, got[label], prefix)
			}
			verifyURL(t, got[label], "fileplay", "s", start.Add(24*time.Hour))
		}
	})
	t.Run("env over file, flags over env", func(t *testing.T) {
		env := map[string]string{"LIVETAPE_CONFIG": cfgFile, "LIVETAPE_PUSH_KEY": "envkey", "LIVETAPE_PLAY_KEY": "envplay"}
		got, err := runSign(t, env, "--stream", "s", "--play-key", "flagplay", "--rtmp-port", "1", "--http-port", "2")
		if err != nil {
			t.Fatal(err)
		}
		verifyURL(t, got["push"], "envkey", "s", start.Add(24*time.Hour))
		verifyURL(t, got["play-flv"], "flagplay", "s", start.Add(24*time.Hour))
		if !strings.HasPrefix(got["push"], "rtmp://localhost:1/") || !strings.HasPrefix(got["play-hls"], "http://localhost:2/") {
			t.Errorf("ports: %v", got)
		}
	})
}

// TestSignRun goes through run and the process environment once.
func TestSignRun(t *testing.T) {
	t.Setenv("LIVETAPE_PUSH_KEY", "k")
	t.Setenv("LIVETAPE_CONFIG", "")
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"sign", "--stream", "x"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(stdout.String(), "\n")
	push, ok := strings.CutPrefix(line, "push: ")
	if !ok {
		t.Fatalf("first line %q", line)
	}
	verifyURL(t, push, "k", "x", time.Now().Add(24*time.Hour))
}

func TestSignErrors(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr []string
		usage   bool
	}{
		{name: "no stream", args: []string{"--key", "k"}, wantErr: []string{"--stream is required"}, usage: true},
		{name: "no key", args: []string{"--stream", "s"}, wantErr: []string{"no push key", "LIVETAPE_PUSH_KEY"}},
		{name: "dotdot", args: []string{"--key", "k", "--stream", ".."}, wantErr: []string{"--stream", `".."`}},
		{name: "dot", args: []string{"--key", "k", "--stream", "."}, wantErr: []string{"--stream"}},
		{name: "slash", args: []string{"--key", "k", "--stream", "a/b"}, wantErr: []string{"--stream"}},
		{name: "too long", args: []string{"--key", "k", "--stream", strings.Repeat("a", 129)}, wantErr: []string{"--stream"}},
		{name: "bad app", args: []string{"--key", "k", "--stream", "s", "--app", "a b"}, wantErr: []string{"--app"}},
		{name: "bad format", args: []string{"--key", "k", "--stream", "s", "--record", "mkv"}, wantErr: []string{`"mkv"`}},
		{name: "empty format", args: []string{"--key", "k", "--stream", "s", "--record", "mp4|"}, wantErr: []string{`format ""`}},
		{name: "duplicate format", args: []string{"--key", "k", "--stream", "s", "--record", "mp4|hls|mp4"}, wantErr: []string{"twice"}},
		{name: "interval too big", args: []string{"--key", "k", "--stream", "s", "--interval", "7201"}, wantErr: []string{"--interval 7201"}},
		{name: "interval negative", args: []string{"--key", "k", "--stream", "s", "--interval", "-1"}, wantErr: []string{"--interval -1"}},
		{name: "record type", args: []string{"--key", "k", "--stream", "s", "--record-type", "video"}, wantErr: []string{"--record-type"}},
		{name: "ttl", args: []string{"--key", "k", "--stream", "s", "--ttl", "-1h"}, wantErr: []string{"--ttl"}},
		{name: "host", args: []string{"--key", "k", "--stream", "s", "--host", "a/b"}, wantErr: []string{"--host"}},
		{name: "port", args: []string{"--key", "k", "--stream", "s", "--rtmp-port", "70000"}, wantErr: []string{"--rtmp-port"}},
		{name: "unknown flag", args: []string{"--stream", "s", "--nope"}, wantErr: []string{"nope"}, usage: true},
		{name: "bad ttl syntax", args: []string{"--stream", "s", "--ttl", "soon"}, wantErr: []string{"ttl"}, usage: true},
		{name: "stray argument", args: []string{"--stream", "s", "extra"}, wantErr: []string{`"extra"`}, usage: true},
		{name: "bad env", env: map[string]string{"LIVETAPE_IDLE_TIMEOUT": "abc"}, args: []string{"--key", "k", "--stream", "s"}, wantErr: []string{"LIVETAPE_IDLE_TIMEOUT"}},
		{
			name:    "all problems at once",
			args:    []string{"--stream", "..", "--record", "avi", "--interval", "0", "--interval", "9000"},
			wantErr: []string{"no push key", "--stream", "avi", "--interval 9000"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := runSign(t, tt.env, tt.args...)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q:\n%v", w, err)
				}
			}
			if got := errors.As(err, new(usageError)); got != tt.usage {
				t.Errorf("usage error = %v, want %v (%v)", got, tt.usage, err)
			}
		})
	}
}
