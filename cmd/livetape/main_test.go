package main

import (
	"os"
	"testing"

	"github.com/livetape/livetape/internal/transcodertest"
)

// TestMain removes the livetape-transcoder that transcodertest.Binary built for the
// tests that transcode.
func TestMain(m *testing.M) { os.Exit(transcodertest.Main(m)) }
