package live

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/loadgen"
)

func TestZZProfile(t *testing.T) {
	if os.Getenv("ZZPROF") == "" {
		t.Skip()
	}
	s := startServer(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go loadgen.Publish(ctx, s.rtmpAddr, "live", "p", loadgen.Stream{})
	time.Sleep(3 * time.Second)
	var st loadgen.Stats
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if os.Getenv("ZZPROF") == "rtmp" {
				loadgen.ViewRTMP(ctx, s.rtmpAddr, "live", "p", &st, 10)
			} else {
				loadgen.View(ctx, s.httpURL+"/live/p.flv", &st, 10)
			}
		}()
	}
	time.Sleep(10 * time.Second)
	cancel()
	wg.Wait()
}
