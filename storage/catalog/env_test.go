package catalog_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// env is one catalog on one kind of Redis and one kind of store.
type env struct {
	cat   *catalog.Catalog
	store storage.Store
	rdb   *redis.Client
	redis *redistest.Server // nil on miniredis
}

// flushAll empties the Redis, as a restart without persistence does.
func (e *env) flushAll(t testing.TB) {
	t.Helper()
	if err := e.rdb.FlushAll(t.Context()).Err(); err != nil {
		t.Fatal(err)
	}
}

type backend struct {
	name  string
	redis func(testing.TB) (*redis.Client, *redistest.Server)
	store func(testing.TB) storage.Store
}

func realRedis(t testing.TB) (*redis.Client, *redistest.Server) {
	srv := redistest.Start(t)
	opt, err := redis.ParseURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { rdb.Close() })
	return rdb, srv
}

func miniRedis(t testing.TB) (*redis.Client, *redistest.Server) {
	m := miniredis.NewMiniRedis()
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	return rdb, nil
}

func localStore(t testing.TB) storage.Store { return storage.Local{Dir: t.TempDir()} }

func s3Store(t testing.TB) storage.Store {
	srv := s3test.Start(t)
	s, err := storage.NewS3(context.Background(), storage.S3Config{
		Endpoint: srv.Endpoint, Region: srv.Region, Bucket: srv.Bucket,
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var backends = []backend{
	{"redis/local", realRedis, localStore},
	{"miniredis/local", miniRedis, localStore},
	{"redis/s3", realRedis, s3Store},
	{"miniredis/s3", miniRedis, s3Store},
}

// forEachBackend runs fn on every combination of Redis and store (the S3 ones are
// skipped without versitygw, the real Redis ones without redis-server).
func forEachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			rdb, srv := b.redis(t)
			e := newEnv(t, rdb, b.store(t))
			e.redis = srv
			fn(t, e)
		})
	}
}

func newEnv(t testing.TB, rdb *redis.Client, st storage.Store) *env {
	cat, err := catalog.New(catalog.Config{Store: st, Redis: rdb, Log: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	return &env{cat: cat, store: st, rdb: rdb}
}
