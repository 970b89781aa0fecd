package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/storage/catalog"
)

// cmdCatalog runs `livetape catalog rebuild`: the index in Redis made again from the
// catalog JSON in the storage, which stays the truth. Its settings locate the storage
// and the Redis, from the same file and variables as serve.
func cmdCatalog(ctx context.Context, args []string, env func(string) (string, bool), stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "rebuild" {
		return usagef("want 'livetape catalog rebuild [flags]'")
	}
	cfg, done, err := parseConfig("catalog", args[1:], env, stdout)
	if done || err != nil {
		return err
	}
	if cfg.Jobs.RedisAddr == "" {
		return errors.New("catalog rebuild: needs the shared Redis (jobs.redis_addr, LIVETAPE_REDIS_ADDR); with the embedded queue, `livetape serve` rebuilds its index at every start")
	}
	log, err := newLogger(cfg.Log, stderr)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	jcfg := cfg.Jobs
	jcfg.Serve = 0 // a client of the Redis only
	q, err := jobs.Open(ctx, jcfg, "", log)
	if err != nil {
		return err
	}
	defer q.Close()
	cat, err := catalog.New(catalog.Config{Store: store, Redis: q.Redis(), Log: log})
	if err != nil {
		return err
	}
	st, err := cat.Rebuild(ctx)
	if err != nil {
		return fmt.Errorf("catalog rebuild: %w", err)
	}
	fmt.Fprintf(stdout, "catalog index rebuilt: %d entries, %d broadcasts, %d skipped, %d removed, took %v\n",
		st.Entries, st.Broadcasts, st.Skipped, st.Removed, st.Took.Round(time.Millisecond))
	return nil
}
