#!/usr/bin/env bash
# Measures livetape and nginx-rtmp side by side with the same harness (cmd/livetape-load),
# a fresh server per case, servers interleaved, CPU as the server process's own CPU time:
#   - 200 HTTP-FLV viewers of one 2.5 Mbit/s stream (livetape)
#   - 200 RTMP viewers of one 2.5 Mbit/s stream (livetape, nginx-rtmp)
#   - 16 publishers at 2.5 Mbit/s, recorded (livetape: mp4|hls|flv; nginx: record all)
# With "formats" as third argument, also 16 publishers not recorded (both servers; livetape
# still makes live HLS) and recorded in one format at a time (livetape), to see what each
# format costs beside nginx-rtmp, which records FLV only.
# Needs nginx with the RTMP module (Debian: apt-get install -y nginx libnginx-mod-rtmp).
# Not part of `go test`: run it by hand.
#
#   scripts/bench-nginx.sh [runs] [duration] [formats]   e.g. scripts/bench-nginx.sh 2 20s
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-1}
duration=${2:-20s}
formats=${3:-}
[ -z "$formats" ] || [ "$formats" = formats ] || { echo "third argument: formats, or none" >&2; exit 2; }
nginx_module=${NGINX_RTMP_MODULE:-/usr/lib/nginx/modules/ngx_rtmp_module.so}
command -v nginx >/dev/null || { echo "nginx not installed" >&2; exit 1; }
[ -f "$nginx_module" ] || { echo "nginx RTMP module not found at $nginx_module" >&2; exit 1; }

work=$(mktemp -d)
trap 'kill "${nginx_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/livetape" ./cmd/livetape
go build -o "$work/livetape-load" ./cmd/livetape-load

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_nginx RECORD: one process (master_process off), RTMP on a free port.
start_nginx() {
	local record=$1 port
	port=$(free_port)
	mkdir -p "$work/nginx/rec" "$work/nginx/logs"
	cat >"$work/nginx/nginx.conf" <<CONF
load_module $nginx_module;
daemon off;
master_process off;
worker_processes 1;
error_log $work/nginx/logs/error.log warn;
pid $work/nginx/nginx.pid;
events { worker_connections 4096; }
rtmp {
    server {
        listen 127.0.0.1:$port;
        chunk_size 4096;
        application live {
            live on;
            $( [ "$record" = yes ] && echo "record all; record_path $work/nginx/rec; record_unique on;" )
        }
    }
}
CONF
	nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" &
	nginx_pid=$!
	nginx_addr=127.0.0.1:$port
	for _ in $(seq 50); do
		(exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nginx did not start" >&2; exit 1
}

stop_nginx() { kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; nginx_pid=; rm -rf "$work/nginx/rec"; }

load() { "$work/livetape-load" --duration "$duration" "$@" | sed 's/^/    /'; }

for run in $(seq "$runs"); do
	echo "== run $run"
	echo "-- livetape, 200 HTTP-FLV viewers";       load --bin "$work/livetape" --viewers 200 --protocol flv
	echo "-- livetape, 200 RTMP viewers";           load --bin "$work/livetape" --viewers 200 --protocol rtmp
	start_nginx no
	echo "-- nginx-rtmp, 200 RTMP viewers";         load --bin "" --rtmp "$nginx_addr" --pid "$nginx_pid" --viewers 200 --protocol rtmp
	stop_nginx
	echo "-- livetape, 16 publishers, mp4|hls|flv"; load --bin "$work/livetape" --viewers 0 --publishers 16 --record 'mp4|hls|flv'
	start_nginx yes
	echo "-- nginx-rtmp, 16 publishers, record all"; load --bin "" --rtmp "$nginx_addr" --pid "$nginx_pid" --viewers 0 --publishers 16
	stop_nginx
	[ -n "$formats" ] || continue
	echo "-- livetape, 16 publishers, not recorded"; load --bin "$work/livetape" --viewers 0 --publishers 16
	start_nginx no
	echo "-- nginx-rtmp, 16 publishers, not recorded"; load --bin "" --rtmp "$nginx_addr" --pid "$nginx_pid" --viewers 0 --publishers 16
	stop_nginx
	for f in flv mp4 hls; do
		echo "-- livetape, 16 publishers, $f";  load --bin "$work/livetape" --viewers 0 --publishers 16 --record "$f"
	done
done
