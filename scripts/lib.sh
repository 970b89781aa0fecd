# Shared by scripts/run.sh and scripts/test.sh: source it, do not run it.
#
# The package tables map a command on PATH to the Debian/Ubuntu package that provides
# it; ensure_commands installs the packages of the commands that are missing. To add a
# dependency (redis-server…), add a row to the table of the scripts that need it. The
# library table (build_libraries) maps a pkg-config name to its -dev package the same
# way; ensure_libraries installs the missing ones.

# Needed to run livetape (scripts/run.sh and scripts/test.sh).
declare -A run_packages=(
	[gcc]=gcc                # livetape-transcoder links FFmpeg through cgo
	[pkg-config]=pkg-config  # cgo finds the FFmpeg libraries with it
)

# Libraries needed to build livetape-transcoder, by pkg-config name: it links FFmpeg
# 5.1 (Debian 12) through go-astiav (livetape itself builds with CGO_ENABLED=0).
# ensure_libraries installs the -dev package of every one that `pkg-config --exists`
# does not find.
declare -A build_libraries=(
	[libavcodec]=libavcodec-dev
	[libavdevice]=libavdevice-dev # go-astiav links it, though livetape uses no device
	[libavfilter]=libavfilter-dev
	[libavformat]=libavformat-dev
	[libavutil]=libavutil-dev
	[libswresample]=libswresample-dev
	[libswscale]=libswscale-dev
)

# Needed by the tests only (scripts/test.sh).
declare -A test_packages=(
	[ffmpeg]=ffmpeg   # fixtures and end-to-end tests push with ffmpeg
	[ffprobe]=ffmpeg  # and check the output with ffprobe
	[gcc]=gcc         # go test -race needs cgo
	[redis-server]=redis-server # jobs tests run asynq against a real Redis
	[flvmeta]=flvmeta # FLV recordings are checked with flvmeta --check
	[docker-compose]=docker-compose # TestComposeFile validates docker-compose.yml (no daemon needed)
	[chromium]=chromium # TestConsoleInChromium loads /console in headless Chromium
)

# Minimum Go version (major.minor), as in go.mod.
go_min_major=1
go_min_minor=26

log() { echo "$(basename "$0"): $*" >&2; }

# ensure_commands TABLE... installs the packages providing every missing command listed in
# the named associative arrays.
ensure_commands() {
	local -A want=()
	local table cmd
	for table in "$@"; do
		local -n tbl="$table"
		for cmd in "${!tbl[@]}"; do
			if ! command -v "$cmd" >/dev/null 2>&1; then
				want["${tbl[$cmd]}"]=1
			fi
		done
		unset -n tbl
	done
	install_packages "${!want[@]}"
}

# ensure_libraries TABLE... installs the -dev packages of every library listed (by
# pkg-config name) in the named associative arrays that pkg-config cannot find.
# Run it after ensure_commands has installed pkg-config.
ensure_libraries() {
	local -A want=()
	local table lib
	for table in "$@"; do
		local -n tbl="$table"
		for lib in "${!tbl[@]}"; do
			if ! pkg-config --exists "$lib" 2>/dev/null; then
				want["${tbl[$lib]}"]=1
			fi
		done
		unset -n tbl
	done
	install_packages "${!want[@]}"
}

# install_packages PKG... installs the packages with apt-get (through sudo when not root).
install_packages() {
	if (($# == 0)); then
		return 0
	fi
	local pkgs=("$@")
	if ! command -v apt-get >/dev/null 2>&1; then
		log "missing packages ${pkgs[*]} and no apt-get to install them: install them by hand"
		exit 1
	fi
	local sudo=()
	if ((EUID != 0)); then
		if ! command -v sudo >/dev/null 2>&1; then
			log "missing packages ${pkgs[*]}: run as root or install sudo"
			exit 1
		fi
		sudo=(sudo)
	fi
	log "installing ${pkgs[*]}"
	"${sudo[@]}" apt-get update
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
}

# ensure_go checks that Go >= go_min_major.go_min_minor is on PATH (or in /usr/local/go).
ensure_go() {
	if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
		export PATH="/usr/local/go/bin:$PATH"
	fi
	if ! command -v go >/dev/null 2>&1; then
		cat >&2 <<MSG
$(basename "$0"): Go ${go_min_major}.${go_min_minor} or newer is required and 'go' is not on PATH.
Install it from https://go.dev/dl/, for example:
  curl -fsSL https://go.dev/dl/go${go_min_major}.${go_min_minor}.0.linux-amd64.tar.gz | sudo tar -C /usr/local -xz
  export PATH=/usr/local/go/bin:\$PATH
MSG
		exit 1
	fi
	local v major minor
	v="$(go env GOVERSION)" # go1.26.8, go1.27rc1, devel …
	if [[ "$v" =~ ^go([0-9]+)\.([0-9]+) ]]; then
		major="${BASH_REMATCH[1]}" minor="${BASH_REMATCH[2]}"
		if ((major < go_min_major || (major == go_min_major && minor < go_min_minor))); then
			log "Go ${go_min_major}.${go_min_minor} or newer is required, found $v ($(command -v go)); see https://go.dev/dl/"
			exit 1
		fi
	fi
}

# versitygw is the S3-compatible server that the storage and pipeline tests start on
# loopback (internal/s3test). It is built from source into .cache/bin, which git ignores:
# about 90 s the first time, a version check (a few ms) afterwards.
versitygw_module=github.com/versity/versitygw
versitygw_version=v1.8.0

# ensure_versitygw installs versitygw $versitygw_version into .cache/bin unless it is
# there already, and puts .cache/bin first on PATH. Run it from the repository root.
# With LIVETAPE_TEST_S3_ENDPOINT set the tests use that server and nothing is installed.
ensure_versitygw() {
	if [[ -n "${LIVETAPE_TEST_S3_ENDPOINT:-}" ]]; then
		return 0
	fi
	local bin_dir="$PWD/.cache/bin"
	local bin="$bin_dir/versitygw"
	if [[ ! -x "$bin" ]] || ! go version -m "$bin" 2>/dev/null |
		grep -qE "^[[:space:]]+mod[[:space:]]+${versitygw_module}[[:space:]]+${versitygw_version}[[:space:]]"; then
		log "installing versitygw ${versitygw_version} into .cache/bin (builds from source, about 90 s, once)"
		mkdir -p "$bin_dir"
		GOBIN="$bin_dir" go install "${versitygw_module}/cmd/versitygw@${versitygw_version}"
	fi
	export PATH="$bin_dir:$PATH"
}
