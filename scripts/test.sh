#!/usr/bin/env bash
# Runs livetape's checks on a fresh Debian/Ubuntu machine: installs what is missing
# (ffmpeg, gcc for -race, versitygw as the S3 server of the tests), then gofmt, go vet
# and go test -race over the whole module.
#
# Usage: scripts/test.sh [go test flags]    e.g. scripts/test.sh -run TestSign -v
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_commands run_packages test_packages
ensure_libraries build_libraries
ensure_go
go mod download
ensure_versitygw

log "gofmt"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	mapfile -t go_files < <(git ls-files -- '*.go' | while read -r f; do [[ -f "$f" ]] && echo "$f"; done)
else
	mapfile -t go_files < <(find . -name '*.go' -not -path './bin/*')
fi
unformatted=""
if ((${#go_files[@]} > 0)); then
	unformatted="$(gofmt -l "${go_files[@]}")"
fi
if ! test -z "$unformatted"; then
	log "not gofmt-ed (run gofmt -w on them):"
	echo "$unformatted" >&2
	exit 1
fi

log "go vet"
go vet ./...

log "go test"
# The tools were installed above: a test that cannot find one must fail, not skip
# (a broken install would otherwise pass as a green run).
export LIVETAPE_TEST_REQUIRE_TOOLS=1
go test -race -count=1 -timeout 20m ./... "$@"

