package jobs

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/internal/transcodertest"
)

// envBenchWorker turns the test binary into a "livetape worker" for
// BenchmarkCallbackThroughput: its value is a benchWorker in JSON.
const envBenchWorker = "LIVETAPE_JOBS_BENCH_WORKER"

// benchWorker says which Redis and receiver a worker process serves.
type benchWorker struct {
	Redis, URL, Node string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(envBenchWorker); spec != "" {
		os.Exit(runBenchWorker(spec))
	}
	os.Exit(transcodertest.Main(m)) // removes the livetape-transcoder the stitch tests built
}

// runBenchWorker serves the shared queues with the default configuration,
// says "ready" on stdout once its workers run, and stops when stdin closes.
func runBenchWorker(spec string) int {
	var w benchWorker
	if err := json.Unmarshal([]byte(spec), &w); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg := DefaultConfig()
	cfg.RedisAddr, cfg.NodeID, cfg.Serve = w.Redis, w.Node, ServeShared
	cfg.CallbackURLs, cfg.CallbackKey = []string{w.URL}, testKey
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := Open(ctx, cfg, "", nil)
	if err == nil {
		err = q.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	if err := q.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startBenchWorker runs a worker process until stop is called (at the latest
// when the benchmark ends).
func startBenchWorker(b *testing.B, w benchWorker) (stop func()) {
	b.Helper()
	spec, _ := json.Marshal(w)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envBenchWorker+"="+string(spec))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stdin.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					b.Errorf("worker %s: %v", w.Node, err)
				}
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
				b.Errorf("worker %s did not stop", w.Node)
			}
		})
	}
	b.Cleanup(stop)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		b.Fatalf("worker %s: %q, %v", w.Node, line, err)
	}
	return stop
}

// slowReceiver answers every callback after receiverDelay, like a backend
// that writes to a database before answering, and counts deliveries.
type slowReceiver struct {
	srv  *httptest.Server
	want int
	done chan struct{}

	mu   sync.Mutex
	seen map[string]int
}

func newSlowReceiver(b *testing.B, delay time.Duration, want int) *slowReceiver {
	r := &slowReceiver{want: want, done: make(chan struct{}), seen: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// The receiver's own work takes delay; a client that gave up is not answered.
		select {
		case <-time.After(delay):
		case <-req.Context().Done():
			return
		}
		id := req.Header.Get(HeaderEventID)
		r.mu.Lock()
		r.seen[id]++
		if r.seen[id] == 1 && len(r.seen) == r.want {
			close(r.done)
		}
		r.mu.Unlock()
	}))
	b.Cleanup(r.srv.Close)
	return r
}

// BenchmarkCallbackThroughput delivers the same batch of 2 000 events to a
// receiver that takes 50 ms per request, with one and then two worker
// processes ("livetape worker": this test binary re-run, each with the
// default concurrency) on one real redis-server, and reports events/s of
// each and their ratio. The events are queued before the workers start;
// the clock runs from the first worker ready to the last event received.
//
//	go test ./jobs -run '^$' -bench CallbackThroughput -benchtime 1x
func BenchmarkCallbackThroughput(b *testing.B) {
	const events = 2000
	const receiverDelay = 50 * time.Millisecond
	var rate [3]float64
	var dups int
	for b.Loop() {
		for _, workers := range []int{1, 2} {
			srv := redistest.Start(b)
			r := newSlowReceiver(b, receiverDelay, events)
			cfg := testConfig(srv.URL(), r.srv.URL)
			cfg.NodeID, cfg.Serve = "ingest", 0 // queues the events, delivers none
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			q, err := Open(ctx, cfg, "", testLogger(b))
			if err != nil {
				b.Fatal(err)
			}
			for i := range events {
				if err := q.Notify(ctx, recordingEvent(fmt.Sprintf("tp-%d", i))); err != nil {
					b.Fatal(err)
				}
			}
			var start time.Time
			var stops []func()
			for w := range workers {
				stops = append(stops, startBenchWorker(b, benchWorker{Redis: srv.URL(), URL: r.srv.URL, Node: fmt.Sprintf("worker-%d", w)}))
				if w == 0 {
					start = time.Now()
				}
			}
			select {
			case <-r.done:
			case <-ctx.Done():
				b.Fatalf("%d workers: not all %d events delivered in a minute", workers, events)
			}
			rate[workers] = events / time.Since(start).Seconds()
			cancel()
			for _, stop := range stops {
				stop()
			}
			q.Close()
			r.mu.Lock()
			for _, n := range r.seen {
				dups += n - 1
			}
			r.mu.Unlock()
		}
	}
	b.ReportMetric(rate[1], "events/s-1-worker")
	b.ReportMetric(rate[2], "events/s-2-workers")
	b.ReportMetric(rate[2]/rate[1], "ratio")
	b.ReportMetric(float64(dups), "duplicates")
}
