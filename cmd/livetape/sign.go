package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/livetape/livetape/live/sign"
	"github.com/livetape/livetape/stream"
)

// signOptions are the flags of `livetape sign`.
type signOptions struct {
	config     string
	stream     string
	app        string
	ttl        time.Duration
	record     string
	interval   int
	recordType string
	host       string
	key        string
	playKey    string
	rtmpPort   int
	httpPort   int
}

// signFlags defines the flags of `livetape sign`.
func signFlags() (*flag.FlagSet, *signOptions) {
	o := new(signOptions)
	fs := flag.NewFlagSet("sign", flag.ContinueOnError)
	fs.StringVar(&o.config, "config", "", "YAML configuration file to take keys and ports from (env "+envConfigFile+")")
	fs.StringVar(&o.stream, "stream", "", "stream id (required): 1-128 of A-Z a-z 0-9 _ . -")
	fs.StringVar(&o.app, "app", "live", "application name, the first path element")
	fs.DurationVar(&o.ttl, "ttl", 24*time.Hour, "how long the URLs stay valid")
	fs.StringVar(&o.record, "record", "", "record formats, |-separated: mp4, hls, flv (default: the server's setting)")
	fs.IntVar(&o.interval, "interval", 0, "record_interval: fragment length in seconds, 1..7200 (default: the server's, 1800)")
	fs.StringVar(&o.recordType, "record-type", "", `record_type: "audio" records audio only`)
	fs.StringVar(&o.host, "host", "localhost", "host name or address viewers and broadcasters reach livetape at")
	fs.StringVar(&o.key, "key", "", "push key (default: LIVETAPE_PUSH_KEY or live.push_key)")
	fs.StringVar(&o.playKey, "play-key", "", "play key (default: LIVETAPE_PLAY_KEY or live.play_key; none leaves play URLs unsigned)")
	fs.IntVar(&o.rtmpPort, "rtmp-port", 0, "RTMP port in the URLs (default: the port of live.rtmp_addr, 1935)")
	fs.IntVar(&o.httpPort, "http-port", 0, "HTTP port in the URLs (default: the port of http_addr, 8080)")
	return fs, o
}

// cmdSign prints, one per line with a label, the signed push URL and the play URLs of a
// stream. Keys and ports default to the configuration (file and environment).
func cmdSign(_ context.Context, args []string, env func(string) (string, bool), stdout, _ io.Writer) error {
	fs, o := signFlags()
	if done, err := parseFlags(fs, args, stdout); done || err != nil {
		return err
	}
	if o.stream == "" {
		return usagef("--stream is required")
	}
	cfg, err := loadConfig(o.config, env, nil)
	if err != nil {
		return err
	}
	if o.key == "" {
		o.key = cfg.Live.PushKey
	}
	if o.playKey == "" {
		o.playKey = cfg.Live.PlayKey
	}
	if o.rtmpPort == 0 {
		if o.rtmpPort, err = addrPort(cfg.Live.RTMPAddr); err != nil {
			return fmt.Errorf("live.rtmp_addr %q: %w; pass --rtmp-port", cfg.Live.RTMPAddr, err)
		}
	}
	if o.httpPort == 0 {
		if o.httpPort, err = addrPort(cfg.HTTPAddr); err != nil {
			return fmt.Errorf("http_addr %q: %w; pass --http-port", cfg.HTTPAddr, err)
		}
	}
	urls, err := signURLs(*o, time.Now())
	if err != nil {
		return err
	}
	for _, u := range urls {
		fmt.Fprintf(stdout, "%s: %s\n", u.label, u.url)
	}
	return nil
}

type labeledURL struct{ label, url string }

// signURLs validates o like the server will and builds the push and play URLs, signed
// to expire at now+o.ttl.
func signURLs(o signOptions, now time.Time) ([]labeledURL, error) {
	var errs []error
	if o.key == "" {
		errs = append(errs, errors.New("no push key: pass --key, or set LIVETAPE_PUSH_KEY or live.push_key in the --config file"))
	}
	if err := stream.ValidStreamID(o.stream); err != nil {
		errs = append(errs, fmt.Errorf("--stream: %w", err))
	}
	if err := stream.ValidStreamID(o.app); err != nil {
		errs = append(errs, fmt.Errorf("--app: %w", err))
	}
	if o.ttl <= 0 {
		errs = append(errs, fmt.Errorf("--ttl %v: must be positive", o.ttl))
	}
	if o.record != "" {
		if _, err := stream.ParseRecordFormats(o.record); err != nil {
			errs = append(errs, fmt.Errorf("--record: %w", err))
		}
	}
	if o.interval != 0 && (o.interval < 1 || o.interval > stream.MaxRecordInterval) {
		errs = append(errs, fmt.Errorf("--interval %d: must be in 1..%d seconds", o.interval, stream.MaxRecordInterval))
	}
	if o.recordType != "" && o.recordType != "audio" {
		errs = append(errs, fmt.Errorf("--record-type %q: only \"audio\" is known", o.recordType))
	}
	if o.host == "" || strings.ContainsAny(o.host, "/?#@ ") {
		errs = append(errs, fmt.Errorf("--host %q: must be a host name or address", o.host))
	}
	for _, p := range []struct {
		name string
		port int
	}{{"--rtmp-port", o.rtmpPort}, {"--http-port", o.httpPort}} {
		if p.port < 1 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: must be in 1..65535", p.name, p.port))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	expiry := now.Add(o.ttl)
	rtmpBase := "rtmp://" + net.JoinHostPort(o.host, strconv.Itoa(o.rtmpPort)) + "/" + o.app + "/" + o.stream
	httpBase := "http://" + net.JoinHostPort(o.host, strconv.Itoa(o.httpPort)) + "/" + o.app + "/" + o.stream

	// The query is written by hand: the parameters keep this order and record keeps its
	// literal "|" (url.Values.Encode would sort them and write %7C).
	push := rtmpBase + "?" + signedQuery(o.key, o.stream, expiry)
	if o.record != "" {
		push += "&record=" + o.record
	}
	if o.interval != 0 {
		push += "&record_interval=" + strconv.Itoa(o.interval)
	}
	if o.recordType != "" {
		push += "&record_type=" + o.recordType
	}

	playQuery := ""
	if o.playKey != "" {
		playQuery = "?" + signedQuery(o.playKey, o.stream, expiry)
	}
	return []labeledURL{
		{"push", push},
		{"play-flv", httpBase + ".flv" + playQuery},
		{"play-hls", httpBase + ".m3u8" + playQuery},
		{"play-rtmp", rtmpBase + playQuery},
	}, nil
}

// signedQuery returns "txSecret=…&txTime=…" for streamID.
func signedQuery(key, streamID string, expiry time.Time) string {
	q := sign.Query(key, streamID, expiry)
	return "txSecret=" + q.Get("txSecret") + "&txTime=" + q.Get("txTime")
}

// addrPort returns the numeric port of a listen address such as ":1935".
func addrPort(addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %q is not a number in 1..65535", port)
	}
	return n, nil
}
