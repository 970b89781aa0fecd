package main

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/live"
	"github.com/livetape/livetape/recorder"
	"github.com/livetape/livetape/storage/catalog"
	"github.com/livetape/livetape/stream"
)

// Config is livetape's whole configuration. Each package receives only its own part.
// Load it with loadConfig: defaults < YAML file < environment < flags.
type Config struct {
	// DataDir holds recordings and state (default "./data").
	DataDir string `yaml:"data_dir"`
	// HTTPAddr is the HTTP listen address for playback, VOD and API (default ":8080").
	HTTPAddr string `yaml:"http_addr"`
	// Log configures the process logger.
	Log LogConfig `yaml:"log"`
	// Live configures RTMP ingest and live playback.
	Live live.Config `yaml:"live"`
	// Record sets what is recorded when a push URL says nothing.
	Record recorder.Config `yaml:"record"`
	// Jobs configures the queue (Redis or embedded) and the callbacks.
	Jobs jobs.Config `yaml:"jobs"`
	// NoWorker makes `livetape serve` leave the shared work (callbacks; transcode
	// and stitch to come) to `livetape worker` processes: it still uploads its own
	// spool. Needs a shared Redis.
	NoWorker bool `yaml:"no_worker"`
	// Storage is where recordings go: a local folder (default) or an S3 bucket.
	Storage StorageConfig `yaml:"storage"`
	// PublicURL is the base URL players reach livetape at; callbacks' video_url
	// starts with it (default "http://localhost:8080").
	PublicURL string `yaml:"public_url"`
	// APIKey, when set, is required as a bearer token by /api/v1; without it the API
	// answers loopback clients only.
	APIKey string `yaml:"api_key"`
	// NodeURL is the base URL other nodes reach this node's API at, for the stream
	// locator (default http://HOSTNAME:HTTP_PORT).
	NodeURL string `yaml:"node_url"`
	// VOD configures replay.
	VOD VODConfig `yaml:"vod"`
	// Transcode configures the transcode and poster jobs (templates).
	Transcode TranscodeConfig `yaml:"transcode"`
	// ReconcileInterval is how often unfinished work on disk (closed fragments in the
	// spool, undelivered callbacks) is queued again, in case the queue lost it (a Redis
	// restarted without persistence). Default 30s.
	ReconcileInterval time.Duration `yaml:"reconcile_interval"`
}

// StorageConfig picks the storage backend: S3 when a bucket is set, else a folder
// under the data dir.
type StorageConfig struct {
	S3 S3Config `yaml:"s3"`
	// KeyTemplate names stored recordings (default "{app}/{stream_id}/{start}_{file_id}.{ext}").
	KeyTemplate string `yaml:"key_template"`
}

// S3Config is an S3-compatible bucket.
type S3Config struct {
	Endpoint  string `yaml:"endpoint"`
	Region    string `yaml:"region"`
	Bucket    string `yaml:"bucket"`
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// PathStyle addresses the bucket as ENDPOINT/BUCKET (MinIO, versitygw) rather
	// than BUCKET.ENDPOINT (default true).
	PathStyle bool `yaml:"path_style"`
}

// VODConfig configures replay.
type VODConfig struct {
	// Redirect is "" (livetape streams the object) or "presigned" (302 to a
	// presigned URL of the bucket; S3 only).
	Redirect string `yaml:"redirect"`
}

// LogConfig configures the process logger, which writes to stderr.
type LogConfig struct {
	// Level is debug, info, warn or error (default info).
	Level string `yaml:"level"`
	// Format is text or json (default text).
	Format string `yaml:"format"`
}

// defaultConfig returns the embedded defaults: RTMP :1935, HTTP :8080, data in ./data.
func defaultConfig() Config {
	return Config{
		DataDir:           "./data",
		HTTPAddr:          ":8080",
		Log:               LogConfig{Level: "info", Format: "text"},
		Live:              live.DefaultConfig(),
		Record:            recorder.DefaultConfig(),
		Jobs:              jobs.DefaultConfig(),
		Storage:           StorageConfig{S3: S3Config{Region: "us-east-1", PathStyle: true}, KeyTemplate: catalog.DefaultKeyTemplate},
		PublicURL:         "http://localhost:8080",
		Transcode:         TranscodeConfig{Posters: true},
		ReconcileInterval: 30 * time.Second,
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: must not be empty"))
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("http_addr %q: %w", c.HTTPAddr, err))
	}
	if _, err := parseLogLevel(c.Log.Level); err != nil {
		errs = append(errs, err)
	}
	switch strings.ToLower(c.Log.Format) {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format %q: must be text or json", c.Log.Format))
	}
	if err := c.Live.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Record.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Jobs.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Transcode.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.NoWorker && c.Jobs.RedisAddr == "" {
		errs = append(errs, errors.New("no_worker (serve --no-worker): needs a shared Redis (jobs.redis_addr, LIVETAPE_REDIS_ADDR): the embedded queue is this process's alone, so no worker could deliver its callbacks"))
	}
	if u, err := url.Parse(c.NodeURL); c.NodeURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		errs = append(errs, fmt.Errorf("node_url %q: must be an http(s) URL", c.NodeURL))
	}
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("public_url %q: must be an http(s) URL", c.PublicURL))
	}
	if err := catalog.ValidateKeyTemplate(c.Storage.KeyTemplate); err != nil {
		errs = append(errs, fmt.Errorf("storage.key_template: %w", err))
	}
	if c.ReconcileInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("reconcile_interval %v: must be at least 100ms", c.ReconcileInterval))
	}
	switch c.VOD.Redirect {
	case "":
	case "presigned":
		if c.Storage.S3.Bucket == "" {
			errs = append(errs, errors.New("vod.redirect presigned: needs S3 storage (storage.s3.bucket)"))
		}
	default:
		errs = append(errs, fmt.Errorf("vod.redirect %q: must be empty or presigned", c.VOD.Redirect))
	}
	return errors.Join(errs...)
}

// parseLogLevel accepts debug, info, warn and error, in any case.
func parseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log.level %q: must be debug, info, warn or error", s)
}

// newLogger builds the process logger described by lc, writing to w.
func newLogger(lc LogConfig, w io.Writer) (*slog.Logger, error) {
	level, err := parseLogLevel(lc.Level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(lc.Format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log.format %q: must be text or json", lc.Format)
}

// envConfigFile names the configuration file when --config is not given.
const envConfigFile = "LIVETAPE_CONFIG"

// setting is one row of the configuration reference: where a value can be set and how a
// string from the environment or a flag is parsed into Config. README.md's
// "Configuration" table is generated from settings (see TestREADMEConfigReference).
type setting struct {
	YAML string // dotted key in the YAML file; "" when the file cannot set it
	Env  string // environment variable; "" when there is none
	Flag string // flag of `livetape serve`, without dashes; "" when there is none
	Help string // meaning, one line
	field
}

// field reads and writes one Config field as text. set is nil for the rows that only
// locate the configuration file.
type field struct {
	get func(*Config) string
	set func(*Config, string) error
	// isBool makes the flag a switch (--no-worker, --no-worker=false).
	isBool bool
}

// settings lists every setting. To add one: add the Config field (with its yaml tag and
// default), add a row here, and run `go test ./cmd/livetape -run README -update`.
var settings = []setting{
	{Env: envConfigFile, Flag: "config", Help: "YAML configuration file; unknown keys are rejected"},
	{YAML: "data_dir", Env: "LIVETAPE_DATA_DIR", Flag: "data-dir", Help: "directory for recordings and state",
		field: stringField(func(c *Config) *string { return &c.DataDir })},
	{YAML: "http_addr", Env: "LIVETAPE_HTTP_ADDR", Flag: "http-addr", Help: "HTTP listen address: live playback, VOD replay, API",
		field: stringField(func(c *Config) *string { return &c.HTTPAddr })},
	{YAML: "log.level", Env: "LIVETAPE_LOG_LEVEL", Flag: "log-level", Help: "debug, info, warn or error",
		field: stringField(func(c *Config) *string { return &c.Log.Level })},
	{YAML: "log.format", Env: "LIVETAPE_LOG_FORMAT", Flag: "log-format", Help: "text or json (logs go to stderr)",
		field: stringField(func(c *Config) *string { return &c.Log.Format })},
	{YAML: "live.rtmp_addr", Env: "LIVETAPE_RTMP_ADDR", Flag: "rtmp-addr", Help: "RTMP listen address (push and play)",
		field: stringField(func(c *Config) *string { return &c.Live.RTMPAddr })},
	{YAML: "live.push_key", Env: "LIVETAPE_PUSH_KEY", Help: "key that signs push URLs (txSecret); empty turns push authentication off",
		field: stringField(func(c *Config) *string { return &c.Live.PushKey })},
	{YAML: "live.push_backup_key", Env: "LIVETAPE_PUSH_BACKUP_KEY", Help: "second push key, accepted as well, for key rotation",
		field: stringField(func(c *Config) *string { return &c.Live.PushBackupKey })},
	{YAML: "live.play_key", Env: "LIVETAPE_PLAY_KEY", Help: "key that signs play URLs; empty leaves playback open",
		field: stringField(func(c *Config) *string { return &c.Live.PlayKey })},
	{YAML: "live.idle_timeout", Env: "LIVETAPE_IDLE_TIMEOUT", Help: "drop a publisher that sends nothing for this long (Go duration)",
		field: durationField(func(c *Config) *time.Duration { return &c.Live.IdleTimeout })},
	{YAML: "live.read_merge", Env: "LIVETAPE_READ_MERGE", Help: "read all publishers together once per this period (Go duration, 0..500ms; 0: as media arrives): less CPU on a node with many pushes, for up to this much more latency to viewers",
		field: durationField(func(c *Config) *time.Duration { return &c.Live.ReadMerge })},
	{YAML: "live.viewer_queue", Help: "packets queued per viewer before it skips to the next keyframe (16..65536)",
		field: intField(func(c *Config) *int { return &c.Live.ViewerQueue })},
	{YAML: "live.max_message_size", Env: "LIVETAPE_MAX_MESSAGE_SIZE", Help: "largest RTMP message (video frame) a publisher may send, in bytes or with KiB/MiB (64KiB..16MiB); larger ones close the push",
		field: field{
			get: func(c *Config) string { return c.Live.MaxMessageSize.String() },
			set: func(c *Config, v string) error {
				n, err := live.ParseByteSize(v)
				c.Live.MaxMessageSize = n
				return err
			},
		}},
	{YAML: "live.hls.segment_duration", Help: "live HLS target segment length, cut at the next keyframe (500ms..1m)",
		field: durationField(func(c *Config) *time.Duration { return &c.Live.HLS.SegmentDuration })},
	{YAML: "live.hls.window", Help: "segments listed in the live HLS playlist (2..100)",
		field: intField(func(c *Config) *int { return &c.Live.HLS.Window })},
	{YAML: "live.hls.dir", Help: "folder of the live HLS segments (files in the page cache, not the heap); empty: DATA_DIR/live-hls",
		field: stringField(func(c *Config) *string { return &c.Live.HLS.Dir })},
	{YAML: "record.formats", Env: "LIVETAPE_RECORD_FORMATS", Help: "formats recorded when the push URL has no record= (mp4, hls, flv joined by a pipe; empty or off records nothing)",
		field: formatsField(func(c *Config) *[]string { return &c.Record.Formats })},
	{YAML: "record.interval", Env: "LIVETAPE_RECORD_INTERVAL", Help: "fragment length when the push URL has no record_interval= (seconds or a Go duration, at most 2h)",
		field: secondsField(func(c *Config) *time.Duration { return &c.Record.Interval })},
	{YAML: "record.reconnect_window", Env: "LIVETAPE_RECORD_RECONNECT_WINDOW", Help: "a push starting less than this after the stream's previous push ended continues its broadcast, when the push URL has no record_reconnect_window= (seconds or a Go duration, 0..1h; 0: every push is a broadcast of its own)",
		field: secondsField(func(c *Config) *time.Duration { return &c.Record.ReconnectWindow })},
	{YAML: "record.stitch", Env: "LIVETAPE_RECORD_STITCH", Help: "stitch a broadcast's MP4 recordings into one replay when it ends, when the push URL has no record_stitch=",
		field: boolField(func(c *Config) *bool { return &c.Record.Stitch })},
	{YAML: "record.apps", Help: "per-app defaults: a map of app name to {formats, interval, reconnect_window, stitch}, overriding the four above",
		field: field{get: func(*Config) string { return "" }, set: func(_ *Config, v string) error {
			if v != "" {
				return errors.New("only in the YAML file")
			}
			return nil
		}}},
	{YAML: "jobs.redis_addr", Env: "LIVETAPE_REDIS_ADDR", Help: "Redis of the job queue (host:port or redis:// URI); empty runs an embedded one",
		field: stringField(func(c *Config) *string { return &c.Jobs.RedisAddr })},
	{YAML: "jobs.node_id", Env: "LIVETAPE_NODE_ID", Flag: "node-id", Help: "name of this node on the shared Redis (letters, digits, . _ -); its spool's uploads wait in queue node:NAME. Default: the host name",
		field: stringField(func(c *Config) *string { return &c.Jobs.NodeID })},
	{YAML: "no_worker", Env: "LIVETAPE_NO_WORKER", Flag: "no-worker", Help: "serve only: leave callbacks (the shared work) to `livetape worker` processes; needs jobs.redis_addr",
		field: boolField(func(c *Config) *bool { return &c.NoWorker })},
	{YAML: "jobs.concurrency", Help: "jobs run at once by this process",
		field: intField(func(c *Config) *int { return &c.Jobs.Concurrency })},
	{YAML: "jobs.callback_urls", Env: "LIVETAPE_CALLBACK_URL", Help: "URLs that receive the event callbacks (comma-separated in the environment); empty turns callbacks off",
		field: listField(func(c *Config) *[]string { return &c.Jobs.CallbackURLs })},
	{YAML: "jobs.callback_key", Env: "LIVETAPE_CALLBACK_KEY", Help: "key signing the callbacks (sign = MD5(key + t), X-Livetape-Signature HMAC)",
		field: stringField(func(c *Config) *string { return &c.Jobs.CallbackKey })},
	{YAML: "jobs.callback_timeout", Help: "timeout of one callback POST",
		field: durationField(func(c *Config) *time.Duration { return &c.Jobs.CallbackTimeout })},
	{YAML: "jobs.callback_retry_for", Help: "how long a failing callback is retried, with exponential backoff",
		field: durationField(func(c *Config) *time.Duration { return &c.Jobs.CallbackRetryFor })},
	{YAML: "jobs.retry_base_delay", Help: "first retry delay of a failed job; it doubles up to 10m",
		field: durationField(func(c *Config) *time.Duration { return &c.Jobs.RetryBaseDelay })},
	{YAML: "jobs.poll_interval", Help: "how often idle workers look for tasks queued by other processes, their latency floor (a task this process queues wakes its workers at once); at least 5s on the embedded Redis",
		field: durationField(func(c *Config) *time.Duration { return &c.Jobs.PollInterval })},
	{YAML: "storage.s3.endpoint", Env: "LIVETAPE_S3_ENDPOINT", Help: "S3-compatible endpoint URL; with a bucket, recordings go to S3 instead of DATA_DIR/store",
		field: stringField(func(c *Config) *string { return &c.Storage.S3.Endpoint })},
	{YAML: "storage.s3.bucket", Env: "LIVETAPE_S3_BUCKET", Help: "S3 bucket (created if missing)",
		field: stringField(func(c *Config) *string { return &c.Storage.S3.Bucket })},
	{YAML: "storage.s3.region", Env: "LIVETAPE_S3_REGION", Help: "S3 region",
		field: stringField(func(c *Config) *string { return &c.Storage.S3.Region })},
	{YAML: "storage.s3.access_key", Env: "LIVETAPE_S3_ACCESS_KEY", Help: "S3 access key",
		field: stringField(func(c *Config) *string { return &c.Storage.S3.AccessKey })},
	{YAML: "storage.s3.secret_key", Env: "LIVETAPE_S3_SECRET_KEY", Help: "S3 secret key",
		field: stringField(func(c *Config) *string { return &c.Storage.S3.SecretKey })},
	{YAML: "storage.key_template", Help: "object names: {app} {stream_id} {start} {file_id} {format} {date}, ending in .{ext}",
		field: stringField(func(c *Config) *string { return &c.Storage.KeyTemplate })},
	{YAML: "storage.s3.path_style", Help: "path-style bucket addressing (MinIO, versitygw)",
		field: boolField(func(c *Config) *bool { return &c.Storage.S3.PathStyle })},
	{YAML: "public_url", Env: "LIVETAPE_PUBLIC_URL", Help: "base URL of livetape for players: callbacks' video_url is PUBLIC_URL/vod/KEY",
		field: stringField(func(c *Config) *string { return &c.PublicURL })},
	{YAML: "api_key", Env: "LIVETAPE_API_KEY", Help: "bearer token required by /api/v1 (Authorization: Bearer KEY); empty: /api/v1 answers loopback clients only",
		field: stringField(func(c *Config) *string { return &c.APIKey })},
	{YAML: "node_url", Env: "LIVETAPE_NODE_URL", Help: "base URL of this node's API for other nodes (the stream locator proxies stream calls to it). Default: http://HOSTNAME:HTTP_PORT",
		field: stringField(func(c *Config) *string { return &c.NodeURL })},
	{YAML: "live.on_publish", Env: "LIVETAPE_ON_PUBLISH_URL", Help: "URL asked before a push is accepted (POST JSON app, stream, client_ip, params, node_id); non-2xx or no answer refuses with the body as reason; empty: no hook",
		field: stringField(func(c *Config) *string { return &c.Live.OnPublish })},
	{YAML: "live.on_publish_timeout", Help: "how long on_publish may take before the push is refused (100ms..1m)",
		field: durationField(func(c *Config) *time.Duration { return &c.Live.OnPublishTimeout })},
	{YAML: "vod.redirect", Help: "empty: livetape streams replays; presigned: 302 to a presigned S3 URL",
		field: stringField(func(c *Config) *string { return &c.VOD.Redirect })},
	{YAML: "reconcile_interval", Help: "how often closed fragments left in the spool and undelivered callbacks are queued again",
		field: durationField(func(c *Config) *time.Duration { return &c.ReconcileInterval })},
	{YAML: "record.queue", Help: "packets buffered between a live stream and its recorder (at least 256)",
		field: intField(func(c *Config) *int { return &c.Record.Queue })},
	{YAML: "transcode.templates", Help: "transcode templates added to sd, hd, uhd (or replacing one of that name): a list of {name, short_side, video_kbps, audio_kbps, max_fps}",
		field: field{get: func(*Config) string { return "" }, set: func(_ *Config, v string) error {
			if v != "" {
				return errors.New("only in the YAML file")
			}
			return nil
		}}},
	{YAML: "transcode.posters", Env: "LIVETAPE_POSTERS", Help: "make a JPEG poster (at 10 % of the duration) of every MP4 recording once stored, announced by event 200",
		field: boolField(func(c *Config) *bool { return &c.Transcode.Posters })},
	{YAML: "transcode.binary", Env: "LIVETAPE_TRANSCODER", Help: "the livetape-transcoder executable that runs each transcode and poster job, and `livetape transcode` (env only): a path, or a name on $PATH; empty: livetape-transcoder beside livetape, else on $PATH",
		field: stringField(func(c *Config) *string { return &c.Transcode.Binary })},
}

// listField parses comma-separated lists.
func listField(p func(*Config) *[]string) field {
	return field{
		get: func(c *Config) string { return strings.Join(*p(c), ",") },
		set: func(c *Config, v string) error {
			var out []string
			for _, s := range strings.Split(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					out = append(out, s)
				}
			}
			*p(c) = out
			return nil
		},
	}
}

func boolField(p func(*Config) *bool) field {
	return field{
		isBool: true,
		get:    func(c *Config) string { return strconv.FormatBool(*p(c)) },
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("not a boolean")
			}
			*p(c) = b
			return nil
		},
	}
}

// formatsField parses "mp4|flv" lists; "" and "off" mean none.
func formatsField(p func(*Config) *[]string) field {
	return field{
		get: func(c *Config) string { return strings.Join(*p(c), "|") },
		set: func(c *Config, v string) error {
			if v == "" || v == "off" || v == "none" {
				*p(c) = nil
				return nil
			}
			f, err := stream.ParseRecordFormats(v)
			if err != nil {
				return err
			}
			*p(c) = f
			return nil
		},
	}
}

// secondsField is a duration that also accepts a bare number of seconds, as
// record_interval does in push URLs.
func secondsField(p func(*Config) *time.Duration) field {
	d := durationField(p)
	return field{
		get: d.get,
		set: func(c *Config, v string) error {
			if n, err := strconv.Atoi(v); err == nil {
				*p(c) = time.Duration(n) * time.Second
				return nil
			}
			return d.set(c, v)
		},
	}
}

func stringField(p func(*Config) *string) field {
	return field{
		get: func(c *Config) string { return *p(c) },
		set: func(c *Config, v string) error { *p(c) = v; return nil },
	}
}

func durationField(p func(*Config) *time.Duration) field {
	return field{
		get: func(c *Config) string { return p(c).String() },
		set: func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			*p(c) = d
			return nil
		},
	}
}

func intField(p func(*Config) *int) field {
	return field{
		get: func(c *Config) string { return strconv.Itoa(*p(c)) },
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not an integer")
			}
			*p(c) = n
			return nil
		},
	}
}

// registerFlags defines a string flag on fs for every setting that has one, except
// --config, which the command defines itself. loadConfig applies those set explicitly.
func registerFlags(fs *flag.FlagSet) {
	def := defaultConfig()
	for _, s := range settings {
		if s.Flag == "" || s.set == nil {
			continue
		}
		usage := fmt.Sprintf("%s (default %q, env %s)", s.Help, s.get(&def), s.Env)
		if s.isBool {
			fs.Bool(s.Flag, false, usage)
			continue
		}
		fs.String(s.Flag, "", usage)
	}
}

// loadConfig builds the configuration: defaults < YAML file < environment < flags.
//
// path is the YAML file ("" reads LIVETAPE_CONFIG, and no file at all when that is unset
// too). env looks variables up (os.LookupEnv); an empty variable counts as unset, so an
// unset ${VAR} in a compose file cannot wipe a key. flags, which may be nil, supplies the
// flags of registerFlags; only the flags set explicitly override. The result is
// validated, and every problem found (bad values by name, then Validate's) is returned
// at once.
func loadConfig(path string, env func(string) (string, bool), flags *flag.FlagSet) (Config, error) {
	cfg := defaultConfig()
	if path == "" {
		path, _ = env(envConfigFile)
	}
	if path != "" {
		if err := decodeFile(path, &cfg); err != nil {
			return Config{}, err
		}
	}

	var errs []error
	for _, s := range settings {
		if s.Env == "" || s.set == nil {
			continue
		}
		if v, ok := env(s.Env); ok && v != "" {
			if err := s.set(&cfg, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", s.Env, v, err))
			}
		}
	}
	if flags != nil {
		byFlag := make(map[string]setting)
		for _, s := range settings {
			if s.Flag != "" && s.set != nil {
				byFlag[s.Flag] = s
			}
		}
		flags.Visit(func(f *flag.Flag) {
			s, ok := byFlag[f.Name]
			if !ok {
				return
			}
			if err := s.set(&cfg, f.Value.String()); err != nil {
				errs = append(errs, fmt.Errorf("--%s %q: %w", f.Name, f.Value.String(), err))
			}
		})
	}
	cfg.fillHostDefaults()
	errs = append(errs, cfg.Validate())
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	return cfg, nil
}

// fillHostDefaults sets what defaults to a property of the host, after loading:
// defaultConfig stays the same on every host (README's table is generated from it).
func (c *Config) fillHostDefaults() {
	if c.Jobs.NodeID == "" {
		c.Jobs.NodeID = hostNodeID()
	}
	if c.NodeURL == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(c.HTTPAddr)
		c.NodeURL = "http://" + net.JoinHostPort(cmp.Or(host, "localhost"), port)
	}
	c.Live.NodeID = c.Jobs.NodeID
	if c.Live.HLS.Dir == "" {
		c.Live.HLS.Dir = filepath.Join(c.DataDir, "live-hls")
	}
}

// hostNodeID is the default node id: the host name, with any character a node id
// cannot hold replaced by '-' (a container's host name is its id, which fits).
func hostNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "livetape"
	}
	b := []byte(host)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			b[i] = '-'
		}
	}
	return string(b[:min(len(b), 64)])
}

// decodeFile reads a YAML file over cfg, rejecting unknown keys.
func decodeFile(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}
