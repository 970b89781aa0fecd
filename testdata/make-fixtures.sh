#!/usr/bin/env bash
# Regenerates the media fixtures in this directory from ffmpeg's synthetic (lavfi)
# sources, so the repository never carries footage whose licence or origin is unknown
# and anyone can rebuild the files. See README.md for what each fixture is.
#
# Idempotent: every run rewrites the same files (through a temporary name, so an
# interrupted run never leaves a half-written fixture behind). The bitexact flags and a
# single encoder thread keep the output byte-for-byte stable for a given ffmpeg build.
#
# Usage: testdata/make-fixtures.sh   (from anywhere; requires ffmpeg with libx264)
set -euo pipefail

cd "$(dirname "$0")"

if ! command -v ffmpeg >/dev/null 2>&1; then
	echo "make-fixtures: ffmpeg is required" >&2
	exit 1
fi

max_size=$((1024 * 1024))

# Common flags: quiet, overwrite, reproducible output (no encoder version string or
# creation time written into the file, one x264 thread).
common=(-hide_banner -loglevel error -y -fflags +bitexact)
venc=(-c:v libx264 -threads 1 -flags:v +bitexact -pix_fmt yuv420p)
aenc=(-c:a aac -flags:a +bitexact)

# fixture OUT ARGS... runs ffmpeg writing to a temporary file, then renames it to OUT and
# checks the size limit (fixtures are committed, so they must stay small).
fixture() {
	local out=$1
	shift
	local tmp=".$out.tmp"
	ffmpeg "${common[@]}" "$@" -f flv "$tmp"
	mv "$tmp" "$out"
	local size
	size=$(wc -c <"$out")
	if ((size >= max_size)); then
		echo "make-fixtures: $out is $size bytes, over the 1 MiB limit" >&2
		exit 1
	fi
	echo "$out: $size bytes"
}

# av.flv: 4 s of 320x240 25 fps H.264 (Main, with B-frames so composition times are
# non-zero) with a keyframe exactly every second, and 44.1 kHz stereo AAC. The
# onMetaData tag carries a keyframes index (add_keyframe_index).
fixture av.flv \
	-f lavfi -i testsrc2=size=320x240:rate=25:duration=4 \
	-f lavfi -i sine=frequency=440:sample_rate=44100:duration=4 \
	"${venc[@]}" -profile:v main -preset veryfast -b:v 200k \
	-g 25 -keyint_min 25 -sc_threshold 0 \
	"${aenc[@]}" -ar 44100 -ac 2 -b:a 64k \
	-flvflags add_keyframe_index \
	-shortest

# video720.flv: 1 s of 1280x720 30 fps H.264, no audio track.
fixture video720.flv \
	-f lavfi -i testsrc2=size=1280x720:rate=30:duration=1 \
	"${venc[@]}" -profile:v main -preset veryfast -b:v 300k \
	-g 30 -keyint_min 30 -sc_threshold 0 \
	-an

# audio.flv: 2 s of 44.1 kHz stereo AAC, no video track.
fixture audio.flv \
	-f lavfi -i sine=frequency=440:sample_rate=44100:duration=2 \
	-vn "${aenc[@]}" -ar 44100 -ac 2 -b:a 64k
