package s3test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/livetape/livetape/internal/mediatest"
)

// TestStopRestart checks the outage simulation the pipeline tests rely on: requests fail
// while the server is stopped, and after Restart the same endpoint serves the same data.
func TestStopRestart(t *testing.T) {
	s := Start(t)
	if s.bin == "" {
		t.Skip("external server: cannot stop it")
	}
	ctx := context.Background()
	c := s.Client()
	key := "a/b.txt"
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.Bucket, Key: &key, Body: strings.NewReader("hello")}); err != nil {
		t.Fatal(err)
	}

	s.Stop()
	s.Stop() // stopping twice is harmless
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := c.HeadObject(short, &s3.HeadObjectInput{Bucket: &s.Bucket, Key: &key}); err == nil {
		t.Fatal("HeadObject succeeded against a stopped server")
	}

	start := time.Now()
	s.Restart()
	t.Logf("restart took %v", time.Since(start))
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.Bucket, Key: aws.String(key)})
	if err != nil {
		t.Fatalf("after restart: %v", err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	if string(b) != "hello" {
		t.Fatalf("after restart got %q", b)
	}
}

func TestBucketName(t *testing.T) {
	for _, name := range []string{"", "x", strings.Repeat("Very_Long/Name ", 10)} {
		t.Run(name, func(t *testing.T) {
			b := bucketName(t)
			if len(b) < 3 || len(b) > 63 || strings.Trim(b, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || strings.HasPrefix(b, "-") || strings.HasSuffix(b, "-") {
				t.Fatalf("bad bucket name %q", b)
			}
		})
	}
}

// Without versitygw, Start skips a developer's test and fails scripts/test.sh's.
func TestStartHonoursRequireTools(t *testing.T) {
	if mediatest.IsToolsChild() {
		Start(t)
		return
	}
	mediatest.CheckRequireTools(t, "versitygw not found")
}
