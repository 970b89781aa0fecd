package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/live/sign"
)

// signCall posts body to POST /api/v1/sign with the bearer key (none when key is "")
// and decodes a 200 answer.
func signCall(t *testing.T, srv *httptest.Server, key, body string) (int, SignedURLs, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/sign", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out SignedURLs
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
	}
	return resp.StatusCode, out, string(b)
}

// checkSigned parses raw, checks its signature for streamID with key (as the server's
// publish check does) and returns its query.
func checkSigned(t *testing.T, raw, key, streamID string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	q := u.Query()
	if err := sign.Verify([]string{key}, streamID, q.Get("txSecret"), q.Get("txTime"), time.Now()); err != nil {
		t.Errorf("%s: %v", raw, err)
	}
	return q
}

func TestSignAPI(t *testing.T) {
	h := NewHandler(Config{Key: "apikey", Sign: SignConfig{PushKey: "pushkey", PlayKey: "playkey", RTMPPort: 1935}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	if code, _, _ := signCall(t, srv, "", `{"stream_id":"s1"}`); code != http.StatusUnauthorized {
		t.Errorf("without the API key: %d, want 401", code)
	}

	code, got, body := signCall(t, srv, "apikey", `{"app":"live","stream_id":"s1","ttl":3600,"record":"MP4 | hls","record_interval":600}`)
	if code != http.StatusOK {
		t.Fatalf("sign: %d %s", code, body)
	}
	if !strings.HasPrefix(got.Push, "rtmp://127.0.0.1:1935/live/s1?txSecret=") {
		t.Errorf("push %q: want the host the request reached and the RTMP port", got.Push)
	}
	if !strings.HasSuffix(got.Push, "&record=mp4|hls&record_interval=600") {
		t.Errorf("push %q: want &record=mp4|hls&record_interval=600 at the end", got.Push)
	}
	q := checkSigned(t, got.Push, "pushkey", "s1")
	if until := time.Until(got.Expires); until < 3590*time.Second || until > 3600*time.Second {
		t.Errorf("expires %v: %v from now, want 1 h", got.Expires, until)
	}
	if q.Get("txTime") != sign.TxTime(got.Expires) {
		t.Errorf("txTime %s, expires %v", q.Get("txTime"), got.Expires)
	}
	for raw, prefix := range map[string]string{
		got.PlayFLV:  "http://" + host + "/live/s1.flv?",
		got.PlayHLS:  "http://" + host + "/live/s1.m3u8?",
		got.PlayRTMP: "rtmp://127.0.0.1:1935/live/s1?",
	} {
		if !strings.HasPrefix(raw, prefix) {
			t.Errorf("play URL %q: want prefix %q", raw, prefix)
		}
		checkSigned(t, raw, "playkey", "s1")
	}

	// Defaults: app live, one day, no record parameters.
	code, got, body = signCall(t, srv, "apikey", `{"stream_id":"s2"}`)
	if code != http.StatusOK {
		t.Fatalf("sign with defaults: %d %s", code, body)
	}
	if strings.Contains(got.Push, "record") || !strings.Contains(got.Push, "/live/s2?") {
		t.Errorf("push with defaults %q", got.Push)
	}
	if until := time.Until(got.Expires); until < 24*time.Hour-10*time.Second || until > 24*time.Hour {
		t.Errorf("default ttl: expires in %v, want 24 h", until)
	}

	for _, bad := range []string{
		`{"stream_id":"a/b"}`,
		`{"stream_id":""}`,
		`{"stream_id":"s","app":"x y"}`,
		`{"stream_id":"s","ttl":-1}`,
		`{"stream_id":"s","ttl":99999999999}`,
		`{"stream_id":"s","record":"mkv"}`,
		`{"stream_id":"s","record_interval":7201}`,
		`{"stream_id":"s","txSecret":"x"}`,
		`{"stream_id":"` + strings.Repeat("s", 8<<10) + `"}`,
		`not json`,
	} {
		if code, _, body := signCall(t, srv, "apikey", bad); code != http.StatusBadRequest || !strings.Contains(body, "error") {
			t.Errorf("%.40s: %d %s, want 400 with an error", bad, code, body)
		}
	}
}

// Without a play key the play URLs are plain; without a push key nothing is signed.
func TestSignAPIKeys(t *testing.T) {
	srv := httptest.NewServer(NewHandler(Config{Sign: SignConfig{PushKey: "pushkey", RTMPPort: 19350}}))
	defer srv.Close()
	code, got, body := signCall(t, srv, "", `{"stream_id":"s1"}`) // loopback, no API key set
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	if !strings.HasSuffix(got.PlayFLV, "/live/s1.flv") || got.PlayRTMP != "rtmp://127.0.0.1:19350/live/s1" {
		t.Errorf("unsigned play URLs: %+v", got)
	}

	srv2 := httptest.NewServer(NewHandler(Config{}))
	defer srv2.Close()
	if code, _, body := signCall(t, srv2, "", `{"stream_id":"s1"}`); code != http.StatusConflict || !strings.Contains(body, "push key") {
		t.Errorf("no push key: %d %s, want 409 naming the push key", code, body)
	}
}
