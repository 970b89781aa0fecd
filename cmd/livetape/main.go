// Command livetape is a live-streaming server: RTMP ingest with signed push URLs and
// live HTTP-FLV, HLS and RTMP playback.
//
//	livetape serve [--config FILE] [flags]   run the server (--no-worker: leave callbacks to workers)
//	livetape worker [--config FILE] [flags]  run the shared jobs (callbacks) on a shared Redis
//	livetape catalog rebuild [flags]         rebuild the recordings index from the storage
//	livetape sign --stream ID [flags]        print signed push and play URLs
//	livetape version                         print the version
//	livetape help [COMMAND]                  show help
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "livetape:", err)
		if errors.As(err, new(usageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
