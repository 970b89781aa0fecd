package redistest

import (
	"net"
	"testing"

	"github.com/livetape/livetape/internal/mediatest"
)

func TestStartStopRestart(t *testing.T) {
	s := Start(t)
	if err := s.do([]string{"SET", "k", "v"}); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	s.Stop()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	s.Restart()
	if s.Addr() != addr {
		t.Errorf("restarted on %s, want %s", s.Addr(), addr)
	}
	if err := s.do([]string{"PING"}); err != nil {
		t.Fatal(err)
	}
	// Empty after the restart: GET answers a nil bulk string, not "+".
	if err := s.do([]string{"GET", "k"}); err == nil || err.Error() != "GET: $-1" {
		t.Errorf("GET k after restart: %v, want the nil reply $-1", err)
	}
}

// Without redis-server, Start skips a developer's test and fails scripts/test.sh's.
func TestStartHonoursRequireTools(t *testing.T) {
	if mediatest.IsToolsChild() {
		Start(t)
		return
	}
	mediatest.CheckRequireTools(t, "redis-server not found")
}

func TestStartAOFKeepsDataAcrossRestart(t *testing.T) {
	s := StartAOF(t)
	if err := s.do([]string{"SET", "k", "v"}); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	// Reloaded from the append-only file: GET answers the bulk string "v"
	// ("$1"), not the nil reply of an empty server.
	if err := s.do([]string{"GET", "k"}); err == nil || err.Error() != "GET: $1" {
		t.Errorf("GET k after restart: %v, want the bulk string $1", err)
	}
}
