// Package transcodertest builds the livetape-transcoder executable once per test
// binary, for the tests that run transcodes through it (package transcoder/runner,
// livetape's transcode jobs and command). A package using it calls Main from its
// TestMain, which removes the build when the tests are done.
package transcodertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/livetape/livetape/internal/mediatest"
)

// pkg is the executable's package.
const pkg = "github.com/livetape/livetape/cmd/livetape-transcoder"

var (
	once     sync.Once
	dir      string
	bin      string
	buildErr error
	buildOut []byte
)

// Binary returns the path of livetape-transcoder built from this module, building it
// the first time (FFmpeg's -dev libraries, pkg-config and gcc are needed: about 30 s
// the first time, a few seconds from the build cache). A build that fails skips the
// test, or fails it under LIVETAPE_TEST_REQUIRE_TOOLS.
func Binary(t testing.TB) string {
	t.Helper()
	once.Do(build)
	if buildErr != nil {
		mediatest.MissingTool(t, "livetape-transcoder does not build (FFmpeg's -dev libraries, pkg-config and gcc are needed; scripts/test.sh installs them): %v\n%s", buildErr, buildOut)
	}
	return bin
}

func build() {
	dir, buildErr = os.MkdirTemp("", "livetape-transcoder-test-")
	if buildErr != nil {
		return
	}
	bin = filepath.Join(dir, "livetape-transcoder")
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1") // the transcoder is cgo, whatever the tests run with
	buildOut, buildErr = cmd.CombinedOutput()
}

// Main runs the tests and removes the executable Binary built: call it from TestMain,
// as os.Exit(transcodertest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	return code
}

// Processes lists the ids of the processes running the executable bin (from /proc), to
// check that no transcode outlives its job.
func Processes(bin string) []string {
	var pids []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		if exe, err := os.Readlink(filepath.Join("/proc", d.Name(), "exe")); err == nil && exe == bin {
			pids = append(pids, d.Name())
		}
	}
	return pids
}
