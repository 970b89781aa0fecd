package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path"
	"regexp"
	"strings"
	"testing"
)

func consoleGet(t *testing.T, srv *httptest.Server, method, p string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+p, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The console's files are served with their types and caching rules; what the page
// loads (scripts, styles, module imports) is all there.
func TestConsoleFiles(t *testing.T) {
	mux := http.NewServeMux()
	c := NewConsole()
	mux.Handle("/console", c)
	mux.Handle("/console/", c)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, _ := consoleGet(t, srv, "GET", "/console")
	if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != "/console/" {
		t.Errorf("/console: %d to %q, want 301 to /console/", resp.StatusCode, resp.Header.Get("Location"))
	}

	resp, _ = consoleGet(t, srv, "GET", "/console/")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("/console/: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("page Cache-Control %q, want no-cache (revalidated: a new binary's console shows at once)", cc)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("page CSP %q", csp)
	}
	etag := resp.Header.Get("ETag")
	if etag == "" {
		t.Error("page has no ETag")
	}
	if resp, _ := consoleGet(t, srv, "GET", "/console/", "If-None-Match", etag); resp.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %d, want 304", resp.StatusCode)
	}
	if resp, body := consoleGet(t, srv, "HEAD", "/console/index.html"); resp.StatusCode != http.StatusOK || body != "" ||
		resp.Header.Get("ETag") != etag {
		t.Errorf("HEAD index.html: %d, %d bytes, ETag %q", resp.StatusCode, len(body), resp.Header.Get("ETag"))
	}

	// Every file the page and its modules refer to, with its type and caching.
	refs := regexp.MustCompile(`(?:src|href)="([^":#]+)"|from '\./([^']+)'`)
	want := map[string]bool{}
	queue := []string{"index.html"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		_, body := consoleGet(t, srv, "GET", "/console/"+name)
		for _, m := range refs.FindAllStringSubmatch(body, -1) {
			ref := m[1] + m[2]
			if strings.HasPrefix(ref, "/") || ref == "" || want[ref] {
				continue // another part of livetape (/admin/queues)
			}
			want[ref] = true
			queue = append(queue, ref)
		}
	}
	for _, name := range []string{"app.js", "api.js", "player.js", "style.css", "vendor/hls-1.7.4.min.mjs", "vendor/mpegts-1.8.2.min.js"} {
		if !want[name] {
			t.Errorf("%s is not referred to by the page (found %v)", name, want)
		}
	}
	types := map[string]string{".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	for name := range want {
		resp, body := consoleGet(t, srv, "GET", "/console/"+name)
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("%s: %d, %d bytes", name, resp.StatusCode, len(body))
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != types[path.Ext(name)] {
			t.Errorf("%s: Content-Type %q, want %q", name, ct, types[path.Ext(name)])
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no X-Content-Type-Options: nosniff", name)
		}
		wantCache := "no-cache"
		if strings.HasPrefix(name, "vendor/") {
			wantCache = "public, max-age=31536000, immutable" // named by version
		}
		if cc := resp.Header.Get("Cache-Control"); cc != wantCache {
			t.Errorf("%s: Cache-Control %q, want %q", name, cc, wantCache)
		}
	}
	// The players' licenses ship with them.
	for _, name := range []string{"vendor/hls-1.7.4.LICENSE.txt", "vendor/mpegts-1.8.2.LICENSE.txt"} {
		if resp, body := consoleGet(t, srv, "GET", "/console/"+name); resp.StatusCode != http.StatusOK || !strings.Contains(body, "Apache License") {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}

	for _, p := range []string{"/console/nope.js", "/console/vendor/", "/console/vendor", "/console/..%2fapi%2fconsole.go",
		"/console/app.js/x", "/console/APP.JS", "/consolex"} {
		if resp, _ := consoleGet(t, srv, "GET", p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	if resp, _ := consoleGet(t, srv, "POST", "/console/app.js"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST app.js: %d, want 405", resp.StatusCode)
	}
}
