package api

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

// consoleFiles are the web console: plain ES modules and CSS, no build step, and the
// players it ships (vendor/, named with their versions; see vendor/README.md).
//
//go:embed console
var consoleFiles embed.FS

// consoleTypes are the files the console serves, by extension; other files 404.
var consoleTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".mjs":  "text/javascript; charset=utf-8", // module scripts need a JavaScript type
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".txt":  "text/plain; charset=utf-8",
	".md":   "text/plain; charset=utf-8",
}

// consoleCSP keeps the page to its own scripts and styles. Media, thumbnails and
// playlists may come from elsewhere (a bucket's presigned URLs); hls.js runs its
// worker from a blob: URL and both players feed <video> through MediaSource (blob:).
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: http: https:; " +
	"media-src 'self' blob: http: https:; connect-src 'self' http: https:; worker-src 'self' blob:; " +
	"object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// consoleFile is a file of the console. Its bytes stay in the binary (an embed.FS file
// reads them in place): a process that never serves the console neither copies nor
// touches its ~1 MB of players; the ETag is computed at the first request.
type consoleFile struct {
	path  string // in consoleFiles
	ctype string
	etag  func() string
}

// Console serves the web console at /console/ (GET and HEAD; /console redirects).
// Its files are public: what the console shows comes from /api/v1, behind the API
// key. Versioned players are cached for good; the page's own files are revalidated
// by ETag, so a new binary's console is seen at once.
type Console struct {
	files map[string]consoleFile
}

// NewConsole indexes the embedded files by name and content type.
func NewConsole() *Console {
	c := &Console{files: map[string]consoleFile{}}
	err := fs.WalkDir(consoleFiles, "console", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := consoleTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		etag := sync.OnceValue(func() string {
			h := sha256.New()
			if f, err := consoleFiles.Open(p); err == nil {
				io.Copy(h, f)
				f.Close()
			}
			return `"` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`
		})
		c.files[strings.TrimPrefix(p, "console/")] = consoleFile{path: p, ctype: ctype, etag: etag}
		return nil
	})
	if err != nil { // the files are compiled in: only a broken build gets here
		panic("api: console files: " + err.Error())
	}
	return c
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/console" {
		http.Redirect(w, r, "/console/", http.StatusMovedPermanently)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/console/")
	if name == "" {
		name = "index.html"
	}
	f, ok := c.files[name]
	if !ok || !strings.HasPrefix(r.URL.Path, "/console/") {
		http.Error(w, "no such console file", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := consoleFiles.Open(f.path)
	if err != nil { // compiled in: cannot fail
		http.Error(w, "console file: "+err.Error(), http.StatusInternalServerError)
		return
	}
	defer body.Close()
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag())
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(name, "vendor/") {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if path.Ext(name) == ".html" {
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("Referrer-Policy", "no-referrer")
	}
	http.ServeContent(w, r, name, time.Time{}, body.(io.ReadSeeker)) // embed's files seek
}
