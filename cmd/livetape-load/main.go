// Command livetape-load measures a live server under load: it starts `livetape serve`
// (or uses a running server, livetape or another, e.g. nginx-rtmp through
// scripts/bench-nginx.sh), pushes N synthetic streams over RTMP (optionally recorded),
// connects M real HTTP-FLV or RTMP viewers to the first one over loopback and reports
// the server's CPU (from /proc/PID/stat) and RSS, the viewers' first-keyframe delay,
// the publish-to-viewer latency and errors.
//
//	go build -o bin/livetape ./cmd/livetape
//	go run ./cmd/livetape-load --bin bin/livetape --viewers 200 --protocol rtmp --duration 20s
//	go run ./cmd/livetape-load --bin bin/livetape --viewers 0 --publishers 16 --record 'mp4|hls|flv'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/livetape/livetape/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "livetape-load:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("livetape-load", flag.ContinueOnError)
	bin := fs.String("bin", "bin/livetape", "livetape binary to start; empty to use --rtmp (and --http) and --pid of a running server")
	rtmpAddr := fs.String("rtmp", "", "RTMP address of a running server")
	httpAddr := fs.String("http", "", "HTTP address of a running server (HTTP-FLV viewers only)")
	pid := fs.Int("pid", 0, "process id of a running server (for CPU and RSS)")
	viewers := fs.Int("viewers", 200, "viewers of the first stream")
	protocol := fs.String("protocol", "flv", "viewers' protocol: flv (HTTP-FLV) or rtmp")
	publishers := fs.Int("publishers", 1, "streams pushed at once")
	record := fs.String("record", "", "record=… of the push URLs, e.g. 'mp4|hls|flv' (livetape); empty: no recording")
	duration := fs.Duration("duration", 20*time.Second, "measurement window, after all viewers joined")
	bitrate := fs.Int("bitrate", 2_500_000, "stream bitrate, bit/s")
	fps := fs.Int("fps", 30, "frames per second")
	gop := fs.Duration("gop", 2*time.Second, "keyframe interval")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *protocol != "flv" && *protocol != "rtmp" {
		return fmt.Errorf("--protocol %q: want flv or rtmp", *protocol)
	}
	if *bin != "" && *rtmpAddr == "" {
		srv, err := startServer(ctx, *bin)
		if err != nil {
			return err
		}
		defer srv.stop()
		*rtmpAddr, *httpAddr, *pid = srv.rtmp, srv.http, srv.cmd.Process.Pid
	}
	if *rtmpAddr == "" || *pid == 0 || (*httpAddr == "" && *protocol == "flv" && *viewers > 0) {
		return errors.New("give --bin, or --rtmp, --pid (and --http for HTTP-FLV viewers) of a running server")
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pubErr := make(chan error, *publishers)
	name := func(i int) string {
		n := "load" + strconv.Itoa(i)
		if *record != "" {
			n += "?record=" + url.QueryEscape(*record)
		}
		return n
	}
	for i := range *publishers {
		go func() {
			pubErr <- loadgen.Publish(ctx, *rtmpAddr, "live", name(i), loadgen.Stream{Bitrate: *bitrate, FPS: *fps, GOP: *gop})
		}()
	}
	flvURL := "http://" + *httpAddr + "/live/load0.flv"
	if *protocol == "flv" && *viewers > 0 {
		if err := waitHTTP(ctx, flvURL, 10*time.Second); err != nil {
			return err
		}
	}
	// Let the GOP cache fill, then join viewers at a steady pace, mid-GOP.
	time.Sleep(*gop + 500*time.Millisecond)
	var stats loadgen.Stats
	var wg sync.WaitGroup
	vctx, vcancel := context.WithCancel(ctx)
	defer vcancel()
	for range *viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if *protocol == "rtmp" {
				loadgen.ViewRTMP(vctx, *rtmpAddr, "live", "load0", &stats, 10)
			} else {
				loadgen.View(vctx, flvURL, &stats, 10)
			}
		}()
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // settle
	cpu0, _, err := procStat(*pid)
	if err != nil {
		return err
	}
	sw0 := contextSwitches(*pid)
	t0 := time.Now()
	var peakRSS int64
	for time.Since(t0) < *duration && ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		_, rss, err := procStat(*pid)
		if err != nil {
			return err
		}
		peakRSS = max(peakRSS, rss)
	}
	cpu1, _, _ := procStat(*pid)
	sw1 := contextSwitches(*pid)
	elapsed := time.Since(t0)
	vcancel()
	wg.Wait()
	cancel()
	var pubErrs []error
	for range *publishers {
		if err := <-pubErr; err != nil {
			pubErrs = append(pubErrs, err)
		}
	}

	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }
	fmt.Printf("publishers         %d (errors: %d), record %q\n", *publishers, len(pubErrs), *record)
	if len(pubErrs) > 0 {
		fmt.Printf("first push error   %v\n", pubErrs[0])
	}
	fmt.Printf("viewers            %d %s (errors: %d)\n", *viewers, *protocol, len(stats.Errors))
	if len(stats.Errors) > 0 {
		fmt.Printf("first error        %v\n", stats.Errors[0])
	}
	fmt.Printf("stream             %.1f Mbit/s, %d fps, GOP %v\n", float64(*bitrate)/1e6, *fps, *gop)
	fmt.Printf("server CPU         %.1f %% of one core\n", 100*(cpu1-cpu0).Seconds()/elapsed.Seconds())
	fmt.Printf("server RSS         %.1f MiB peak\n", float64(peakRSS)/(1<<20))
	fmt.Printf("server switches    %.0f context switches/s (its threads')\n", float64(sw1-sw0)/elapsed.Seconds())
	if *viewers > 0 {
		fmt.Printf("first keyframe     p50 %s  p95 %s\n", ms(loadgen.Percentile(stats.FirstKeyframe, 50)), ms(loadgen.Percentile(stats.FirstKeyframe, 95)))
		fmt.Printf("latency            p50 %s  p95 %s  (%d samples)\n", ms(loadgen.Percentile(stats.Latency, 50)), ms(loadgen.Percentile(stats.Latency, 95)), len(stats.Latency))
		fmt.Printf("delivered          %.1f MB/s to viewers\n", float64(stats.Bytes)/1e6/(elapsed.Seconds()+2))
	}
	return nil
}

type server struct {
	cmd        *exec.Cmd
	rtmp, http string
	done       chan struct{}
}

func startServer(ctx context.Context, bin string) (*server, error) {
	rtmpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "livetape-load")
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, "serve")
	cmd.Env = append(os.Environ(), "LIVETAPE_RTMP_ADDR="+rtmpAddr, "LIVETAPE_HTTP_ADDR="+httpAddr,
		"LIVETAPE_DATA_DIR="+dir, "LIVETAPE_LOG_LEVEL=warn", "LIVETAPE_PUSH_KEY=")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	s := &server{cmd: cmd, rtmp: rtmpAddr, http: httpAddr, done: make(chan struct{})}
	go func() { cmd.Wait(); os.RemoveAll(dir); close(s.done) }()
	if err := waitHTTP(ctx, "http://"+httpAddr+"/healthz", 10*time.Second); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *server) stop() {
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitHTTP(ctx context.Context, url string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v (last: %v)", url, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// contextSwitches is how often the threads of a process have left the CPU, voluntarily
// (to wait) or not, summed from /proc: each is a wake-up to pay for, which on a VM is
// most of what a mostly idle server costs beyond its copying.
func contextSwitches(pid int) int64 {
	paths, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	var n int64
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "voluntary_ctxt_switches") {
				c, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

// procStat reads a process's CPU time (user+system) and resident set size from /proc.
func procStat(pid int) (time.Duration, int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the parenthesised command name; utime and stime are fields 14 and 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	rssPages, _ := strconv.ParseInt(f[21], 10, 64)
	const ticks = 100 // USER_HZ
	return time.Duration(utime+stime) * time.Second / ticks, rssPages * int64(os.Getpagesize()), nil
}
