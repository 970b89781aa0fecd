#!/usr/bin/env bash
# Builds livetape and livetape-transcoder into bin/ and runs `livetape serve` on the embedded defaults (RTMP :1935,
# HTTP :8080, data in ./data), installing what is missing first.
#
# Usage: scripts/run.sh [serve flags]    e.g. LIVETAPE_PUSH_KEY=secret scripts/run.sh --log-level debug
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_commands run_packages
ensure_libraries build_libraries
ensure_go
go mod download
# livetape is pure Go (it never maps FFmpeg); livetape-transcoder, which it runs for each
# transcode and poster job and finds beside itself, links FFmpeg through cgo.
CGO_ENABLED=0 go build -o bin/ ./cmd/livetape
go build -o bin/ ./cmd/livetape-transcoder
exec bin/livetape serve "$@"
