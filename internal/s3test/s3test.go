// Package s3test gives tests a real S3-compatible server: versitygw on loopback with a
// posix backend in a temporary directory, or whatever server LIVETAPE_TEST_S3_ENDPOINT
// names. Tests of livetape never mock S3: the SDK's checksums, signatures, multipart
// rules and error codes are what break in production, and only a real server has them.
//
// scripts/test.sh installs versitygw into .cache/bin; without it the tests that need S3
// are skipped, so that `go test ./...` works on a bare machine, unless
// LIVETAPE_TEST_REQUIRE_TOOLS=1 (scripts/test.sh sets it) makes them fail.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/livetape/livetape/internal/mediatest"
)

// Environment variables that point the tests at an existing server instead.
const (
	EnvEndpoint  = "LIVETAPE_TEST_S3_ENDPOINT"
	EnvAccessKey = "LIVETAPE_TEST_S3_ACCESS_KEY"
	EnvSecretKey = "LIVETAPE_TEST_S3_SECRET_KEY"
	EnvRegion    = "LIVETAPE_TEST_S3_REGION"
)

// Region is the region of the started server, and the default for an external one.
const Region = "us-east-1"

// startTimeout bounds how long versitygw may take to answer after it was started.
const startTimeout = 20 * time.Second

// Server is an S3 server for one test, with a bucket of its own. Address it path-style.
type Server struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	Bucket    string // created empty for this test
	AccessKey string
	SecretKey string
	Region    string

	t    testing.TB
	bin  string // "" for an external server
	addr string // host:port versitygw listens on
	dir  string // its posix backend root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	logs *logBuffer
}

// Start returns a running server with a fresh bucket, stopped (or the bucket removed,
// for an external server) when the test ends. It skips the test when no server can be
// had: no LIVETAPE_TEST_S3_ENDPOINT and no versitygw binary (fails it under
// LIVETAPE_TEST_REQUIRE_TOOLS=1).
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, Region: Region, Bucket: bucketName(t)}
	if ep := os.Getenv(EnvEndpoint); ep != "" {
		s.Endpoint = ep
		s.AccessKey = os.Getenv(EnvAccessKey)
		s.SecretKey = os.Getenv(EnvSecretKey)
		if r := os.Getenv(EnvRegion); r != "" {
			s.Region = r
		}
		s.createBucket()
		t.Cleanup(s.removeBucket)
		return s
	}

	bin, err := findBinary()
	if err != nil {
		mediatest.MissingTool(t, "s3test: %v; scripts/test.sh installs it (GOBIN=.cache/bin go install github.com/versity/versitygw/cmd/versitygw@v1.8.0), or set %s to use another S3 server", err, EnvEndpoint)
	}
	s.bin = bin
	s.AccessKey = "livetape-test"
	s.SecretKey = "livetape-test-secret-" + randHex(8)
	s.dir = filepath.Join(t.TempDir(), "gw")
	if err := os.Mkdir(s.dir, 0o755); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	s.logs = &logBuffer{max: 64 << 10}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("s3test: versitygw output:\n%s", s.logs.String())
		}
	})

	// A port found free may be taken before versitygw binds it: try a few.
	for attempt := 1; ; attempt++ {
		s.addr = freeAddr(t)
		s.Endpoint = "http://" + s.addr
		err := s.start()
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("s3test: start versitygw: %v\n%s", err, s.logs.String())
		}
	}
	s.createBucket()
	return s
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s); the data stays for Restart.
// Stopping a stopped server does nothing. It is how tests simulate an S3 outage.
func (s *Server) Stop() {
	if s.bin == "" {
		s.t.Skipf("s3test: cannot stop the external server %s", s.Endpoint)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart starts the server again on the same address and data directory, so clients
// and objects carry over; a running server is stopped first.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	// The port was just released; another process grabbing it in between is possible
	// but not worth a workaround on loopback.
	if err := s.start(); err != nil {
		s.t.Fatalf("s3test: restart versitygw on %s: %v\n%s", s.addr, err, s.logs.String())
	}
}

// Client returns an SDK client for the server, for tests that look behind the storage
// package (pending multipart uploads, raw objects).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// start runs versitygw and waits until it answers HTTP.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin,
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", s.Region,
		"--port", s.addr,
		"--quiet",
		"posix", s.dir)
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	cmd.Env = gatewayEnv()
	setPdeathsig(cmd)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()

	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-done:
			return fmt.Errorf("versitygw exited: %v", cmd.ProcessState)
		default:
		}
		// Any HTTP answer (403 to an anonymous request) means it serves.
		resp, err := client.Get("http://" + s.addr + "/")
		if err == nil {
			resp.Body.Close()
			s.cmd, s.done = cmd, done
			return nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("no answer on %s after %v: %w", s.addr, startTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) createBucket() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.Bucket}); err != nil {
		s.t.Fatalf("s3test: create bucket %q on %s: %v", s.Bucket, s.Endpoint, err)
	}
}

// removeBucket empties and removes the test's bucket on an external server.
func (s *Server) removeBucket() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := s.Client()
	uploads, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &s.Bucket})
	if err == nil {
		for _, u := range uploads.Uploads {
			_, _ = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.Bucket, Key: u.Key, UploadId: u.UploadId})
		}
	}
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &s.Bucket})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			s.t.Logf("s3test: empty bucket %q: %v", s.Bucket, err)
			return
		}
		for _, o := range page.Contents {
			_, _ = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.Bucket, Key: o.Key})
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &s.Bucket}); err != nil {
		var nsb *types.NoSuchBucket
		if !errors.As(err, &nsb) {
			s.t.Logf("s3test: delete bucket %q: %v", s.Bucket, err)
		}
	}
}

// findBinary looks for versitygw on PATH, in $(go env GOPATH)/bin, then in the
// repository's .cache/bin where scripts/test.sh installs it.
func findBinary() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var tried []string
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for gp := range strings.SplitSeq(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
			if gp != "" {
				tried = append(tried, filepath.Join(gp, "bin", "versitygw"))
			}
		}
	}
	if root := moduleRoot(); root != "" {
		tried = append(tried, filepath.Join(root, ".cache", "bin", "versitygw"))
	}
	for _, p := range tried {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("versitygw not found on PATH nor in %s", strings.Join(tried, ", "))
}

// moduleRoot is the nearest folder above the working directory (a package folder, under
// go test) that holds a go.mod.
func moduleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// gatewayEnv is the environment of versitygw without its own settings (ROOT_ACCESS_KEY,
// VGW_*), which would override nothing we pass but could add listeners or backends.
func gatewayEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// bucketName derives a valid, unique bucket name (3-63 of [a-z0-9-]) from the test name.
func bucketName(t testing.TB) string {
	var b strings.Builder
	b.WriteString("lt-")
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			if !strings.HasSuffix(b.String(), "-") {
				b.WriteByte('-')
			}
		}
	}
	name := strings.TrimRight(b.String(), "-")
	if len(name) > 50 {
		name = strings.TrimRight(name[:50], "-")
	}
	return name + "-" + randHex(6)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// logBuffer keeps the first max bytes of versitygw's output for failure reports.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := l.max - l.buf.Len(); room > 0 {
		l.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
