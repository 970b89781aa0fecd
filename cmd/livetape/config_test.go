package main

import (
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/recorder"
)

// mapEnv turns a map into an env lookup for loadConfig.
func mapEnv(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func TestLoadConfig(t *testing.T) {
	tests := []struct {
		name    string
		file    string            // YAML written to a temp file; "" means no --config
		env     map[string]string // environment
		args    []string          // serve flags
		want    func(c *Config)   // edits applied to defaultConfig() to get the expected result
		wantErr []string          // substrings the error must contain, all of them
	}{
		{
			name: "defaults",
			want: func(c *Config) {},
		},
		{
			name: "file overrides defaults",
			file: "data_dir: /srv/tape\nlog:\n  format: json\nlive:\n  rtmp_addr: \":2935\"\n  idle_timeout: 30s\n  hls:\n    window: 10\n",
			want: func(c *Config) {
				c.DataDir = "/srv/tape"
				c.Log.Format = "json" // log.level keeps its default
				c.Live.RTMPAddr = ":2935"
				c.Live.IdleTimeout = 30 * time.Second
				c.Live.HLS.Window = 10 // hls.segment_duration keeps its default
			},
		},
		{
			name: "broadcast settings, per app too",
			file: "record:\n  reconnect_window: 30s\n  apps:\n    edu:\n      reconnect_window: 0s\n      stitch: true\n",
			env:  map[string]string{"LIVETAPE_RECORD_STITCH": "true"},
			want: func(c *Config) {
				zero, yes := time.Duration(0), true
				c.Record.ReconnectWindow = 30 * time.Second
				c.Record.Stitch = true
				c.Record.Apps = map[string]recorder.AppConfig{"edu": {ReconnectWindow: &zero, Stitch: &yes}}
			},
		},
		{
			name:    "reconnect window too long",
			env:     map[string]string{"LIVETAPE_RECORD_RECONNECT_WINDOW": "7200"},
			wantErr: []string{"record.reconnect_window"},
		},
		{
			name: "empty file keeps defaults",
			file: "# nothing here\n",
			want: func(c *Config) {},
		},
		{
			name: "env overrides file",
			file: "http_addr: \":9000\"\nlive:\n  push_key: fromfile\n  idle_timeout: 30s\n",
			env: map[string]string{
				"LIVETAPE_HTTP_ADDR":       ":9001",
				"LIVETAPE_PUSH_KEY":        "fromenv",
				"LIVETAPE_PUSH_BACKUP_KEY": "backup",
				"LIVETAPE_PLAY_KEY":        "play",
				"LIVETAPE_IDLE_TIMEOUT":    "1m",
				"LIVETAPE_RTMP_ADDR":       "127.0.0.1:1936",
				"LIVETAPE_DATA_DIR":        "/tmp/x",
				"LIVETAPE_LOG_LEVEL":       "debug",
				"LIVETAPE_LOG_FORMAT":      "json",
			},
			want: func(c *Config) {
				c.HTTPAddr = ":9001"
				c.Live.PushKey = "fromenv"
				c.Live.PushBackupKey = "backup"
				c.Live.PlayKey = "play"
				c.Live.IdleTimeout = time.Minute
				c.Live.RTMPAddr = "127.0.0.1:1936"
				c.DataDir = "/tmp/x"
				c.Log = LogConfig{Level: "debug", Format: "json"}
			},
		},
		{
			name: "empty env var counts as unset",
			file: "live:\n  push_key: fromfile\n",
			env:  map[string]string{"LIVETAPE_PUSH_KEY": ""},
			want: func(c *Config) { c.Live.PushKey = "fromfile" },
		},
		{
			name: "flag overrides env",
			file: "http_addr: \":9000\"\n",
			env:  map[string]string{"LIVETAPE_HTTP_ADDR": ":9001", "LIVETAPE_RTMP_ADDR": ":1999", "LIVETAPE_LOG_LEVEL": "warn"},
			args: []string{"--http-addr", ":9002", "--rtmp-addr=:1998", "--data-dir", "d", "--log-format", "json"},
			want: func(c *Config) {
				c.HTTPAddr = ":9002"
				c.Live.RTMPAddr = ":1998"
				c.DataDir = "d"
				c.Log.Level = "warn" // no flag given: env stays
				c.Log.Format = "json"
			},
		},
		{
			name:    "unknown YAML key rejected",
			file:    "data_dir: x\nlive:\n  rtmp_adr: \":1\"\n",
			wantErr: []string{"rtmp_adr"},
		},
		{
			name:    "wrong YAML type",
			file:    "live:\n  idle_timeout: soon\n",
			wantErr: []string{"soon"},
		},
		{
			name:    "bad env value named",
			env:     map[string]string{"LIVETAPE_IDLE_TIMEOUT": "abc"},
			wantErr: []string{"LIVETAPE_IDLE_TIMEOUT", `"abc"`},
		},
		{
			name: "multiple problems reported together",
			file: "data_dir: \"\"\nhttp_addr: nocolon\nlog:\n  level: loud\n  format: xml\nlive:\n  viewer_queue: 1\n  read_merge: 1s\n  hls:\n    window: 1000\n",
			env:  map[string]string{"LIVETAPE_IDLE_TIMEOUT": "abc"},
			args: []string{"--rtmp-addr", "nocolon"},
			wantErr: []string{
				"LIVETAPE_IDLE_TIMEOUT", "data_dir", "http_addr", "log.level", "log.format",
				"live.rtmp_addr", "live.viewer_queue", "live.read_merge", "live.hls.window",
			},
		},
		{
			name: "LIVETAPE_CONFIG names the file",
			env:  map[string]string{"LIVETAPE_CONFIG": "FILE"}, // FILE is replaced by the temp file
			file: "data_dir: viaenv\n",
			want: func(c *Config) { c.DataDir = "viaenv" },
		},
		{
			name:    "missing file",
			env:     map[string]string{"LIVETAPE_CONFIG": "/nonexistent/livetape.yaml"},
			wantErr: []string{"/nonexistent/livetape.yaml"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := make(map[string]string)
			for k, v := range tt.env {
				env[k] = v
			}
			path := ""
			if tt.file != "" {
				path = filepath.Join(t.TempDir(), "livetape.yaml")
				if err := os.WriteFile(path, []byte(tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
				if env[envConfigFile] == "FILE" {
					env[envConfigFile] = path
					path = ""
				}
			}
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			registerFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}

			got, err := loadConfig(path, mapEnv(env), fs)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want one mentioning %q", tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error does not mention %q:\n%v", w, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := defaultConfig()
			want.fillHostDefaults()
			tt.want(&want)
			// Defaults that follow other settings, which a case may change.
			want.NodeURL, want.Live.HLS.Dir = "", ""
			want.fillHostDefaults()
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	c := defaultConfig()
	c.fillHostDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestSettingsCoverConfig makes sure every YAML key of Config has a row in settings, so
// the reference in README.md stays complete when fields are added.
func TestSettingsCoverConfig(t *testing.T) {
	var keys []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Struct {
				walk(prefix+tag+".", f.Type)
				continue
			}
			keys = append(keys, prefix+tag)
		}
	}
	walk("", reflect.TypeFor[Config]())

	rows := make(map[string]bool)
	for _, s := range settings {
		if s.YAML != "" {
			if rows[s.YAML] {
				t.Errorf("settings: %s listed twice", s.YAML)
			}
			rows[s.YAML] = true
		}
	}
	for _, k := range keys {
		if !rows[k] {
			t.Errorf("Config key %s has no row in settings", k)
		}
		delete(rows, k)
	}
	for k := range rows {
		t.Errorf("settings row %s is no Config key", k)
	}

	// Every value shown as a default must parse back to itself.
	def := defaultConfig()
	for _, s := range settings {
		if s.set == nil {
			continue
		}
		c := defaultConfig()
		if err := s.set(&c, s.get(&def)); err != nil || !reflect.DeepEqual(c, def) {
			t.Errorf("%s: default %q does not round-trip: %v", s.YAML, s.get(&def), err)
		}
	}
}
