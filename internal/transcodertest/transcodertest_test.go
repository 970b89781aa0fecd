package transcodertest

import (
	"os"
	"testing"

	"github.com/livetape/livetape/internal/mediatest"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// Where livetape-transcoder cannot be built (here: no go on PATH), Binary skips a
// developer's test and fails scripts/test.sh's.
func TestBinaryHonoursRequireTools(t *testing.T) {
	if mediatest.IsToolsChild() {
		Binary(t)
		return
	}
	mediatest.CheckRequireTools(t, "livetape-transcoder does not build")
}

// Binary builds an executable, once.
func TestBinaryBuildsOnce(t *testing.T) {
	first := Binary(t)
	fi, err := os.Stat(first)
	if err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("%s: %v %v, want an executable", first, fi, err)
	}
	if again := Binary(t); again != first {
		t.Errorf("second call built %s, want %s again", again, first)
	}
}
