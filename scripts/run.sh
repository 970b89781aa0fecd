#!/usr/bin/env bash
# Builds livetape and runs `livetape serve` on the embedded defaults (RTMP :1935,
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
go build -o bin/livetape ./cmd/livetape
exec bin/livetape serve "$@"
