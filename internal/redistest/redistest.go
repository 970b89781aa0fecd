// Package redistest runs a real redis-server for tests: one per test, on a
// free loopback port, without persistence, so that tests are isolated and a
// restart loses everything, like a Redis restarted without persistence in
// production.
//
// Set LIVETAPE_TEST_REDIS_ADDR=host:port to use a Redis of your own instead
// (its database 15 is flushed by every Start, so do not point it at data you
// keep); Stop and Restart then skip the test.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

// EnvAddr names the environment variable pointing the tests at an existing
// Redis.
const EnvAddr = "LIVETAPE_TEST_REDIS_ADDR"

// externalDB is the database used on an external Redis.
const externalDB = 15

// startTimeout bounds how long redis-server may take to answer PING.
const startTimeout = 10 * time.Second

// Server is a redis-server started for one test.
type Server struct {
	tb       testing.TB
	addr     string
	external bool
	dir      string
	aof      bool // append-only file, fsynced at every write

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs redis-server on a free port of 127.0.0.1 (or uses
// LIVETAPE_TEST_REDIS_ADDR) and stops it when the test ends. It skips the
// test when redis-server is not installed (fails it under
// LIVETAPE_TEST_REQUIRE_TOOLS=1).
func Start(tb testing.TB) *Server {
	tb.Helper()
	if addr := os.Getenv(EnvAddr); addr != "" {
		s := &Server{tb: tb, addr: addr, external: true}
		if err := s.do([]string{"SELECT", strconv.Itoa(externalDB)}, []string{"FLUSHDB"}); err != nil {
			tb.Fatalf("redistest: %s=%s: %v", EnvAddr, addr, err)
		}
		return s
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		mediatest.MissingTool(tb, "redistest: redis-server not found on PATH: install it (apt-get install redis-server, or scripts/test.sh does) or set %s", EnvAddr)
	}
	s := &Server{tb: tb, dir: tb.TempDir()}
	s.startOnFreePort(bin)
	return s
}

// startOnFreePort starts the server on a free port of 127.0.0.1 and stops
// it when the test ends.
func (s *Server) startOnFreePort(bin string) {
	var lastErr error
	for range 5 { // the free port may be taken between probe and start
		port, err := freePort()
		if err != nil {
			s.tb.Fatalf("redistest: %v", err)
		}
		s.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.start(bin); lastErr == nil {
			s.tb.Cleanup(s.Stop)
			return
		}
	}
	s.tb.Fatalf("redistest: %v", lastErr)
}

// StartAOF is Start with persistence: an append-only file fsynced at every
// write, kept across Restart, as a production Redis holding shared state
// runs. It skips the test on an external Redis (it cannot be restarted).
func StartAOF(tb testing.TB) *Server {
	tb.Helper()
	if os.Getenv(EnvAddr) != "" {
		tb.Skip("redistest: a persistent redis-server cannot be started with " + EnvAddr + " set")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Skip("redistest: redis-server not found on PATH")
	}
	s := &Server{tb: tb, dir: tb.TempDir(), aof: true}
	s.startOnFreePort(bin)
	return s
}

// Addr is host:port of the server.
func (s *Server) Addr() string { return s.addr }

// URL is a redis:// URI of the server's database, which jobs.Config.RedisAddr
// accepts; prefer it to Addr, it also works with an external Redis.
func (s *Server) URL() string {
	if s.external {
		return "redis://" + s.addr + "/" + strconv.Itoa(externalDB)
	}
	return "redis://" + s.addr + "/0"
}

// Stop stops the server (SIGTERM, then waits for it); all data is lost. It
// can be called more than once.
func (s *Server) Stop() {
	s.tb.Helper()
	if s.external {
		s.tb.Skip("redistest: cannot stop the external Redis of " + EnvAddr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(startTimeout):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart stops the server if it runs and starts it again on the same port,
// empty (a StartAOF server reloads its append-only file).
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		s.tb.Fatalf("redistest: %v", err)
	}
	// The port was just released; another process could take it, but
	// nothing else on a test machine picks ports from the ephemeral range
	// this fast. Retry a little in case TIME_WAIT or a slow exit delays it.
	deadline := time.Now().Add(startTimeout)
	for {
		err := s.start(bin)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("redistest: restart on %s: %v", s.addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start runs redis-server on s.addr and waits until it answers PING.
func (s *Server) start(bin string) error {
	_, port, _ := net.SplitHostPort(s.addr)
	aof := []string{"--appendonly", "no"}
	if s.aof {
		aof = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	cmd := exec.Command(bin, append(aof,
		"--port", port,
		"--bind", "127.0.0.1",
		"--save", "",
		"--dir", s.dir,
		"--daemonize", "no",
		"--loglevel", "warning",
	)...)
	out := &mediatest.SyncBuffer{} // the exec copier and this goroutine share it
	cmd.Stdout = out
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()

	deadline := time.Now().Add(startTimeout)
	for {
		err := s.do([]string{"PING"})
		if err == nil {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited: %s", s.addr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on %s did not answer PING: %v", s.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// do sends inline commands on one connection and expects a "+" status
// reply to each.
func (s *Server) do(lines ...[]string) error {
	c, err := net.DialTimeout("tcp", s.addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(c)
	for _, l := range lines {
		if _, err := c.Write([]byte(strings.Join(l, " ") + "\r\n")); err != nil {
			return err
		}
		reply, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(reply, "+") {
			return fmt.Errorf("%s: %s", l[0], strings.TrimSpace(reply))
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
