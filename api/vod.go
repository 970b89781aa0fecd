// Package api is livetape's HTTP control and replay surface: VOD replay of stored
// recordings (/vod/), the recordings API and the events API (/api/v1/).
package api

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/livetape/livetape/storage"
)

// VOD serves stored recordings to players: GET and HEAD /vod/{key...} with Range,
// ETag and Last-Modified, or a redirect to a presigned URL of the bucket.
type VOD struct {
	Store storage.Store
	// Presigned answers 302 to a presigned URL when the store can make one
	// (vod.redirect: presigned), so players fetch straight from the bucket.
	Presigned bool
	// PresignTTL is the validity of presigned URLs (default 1h).
	PresignTTL time.Duration
	Log        *slog.Logger
}

// mediaTypes are the objects /vod/ serves, by extension, with their MIME types.
// Anything else in the bucket (the catalog entries beside the recordings above all)
// is not for players and answers 404 as if it did not exist.
var mediaTypes = map[string]string{
	".mp4":  "video/mp4",
	".m4a":  "audio/mp4",
	".m4s":  "video/iso.segment",
	".flv":  "video/x-flv",
	".m3u8": "application/vnd.apple.mpegurl",
	".ts":   "video/mp2t",
	".jpg":  "image/jpeg", // posters
}

func (v *VOD) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/vod/")
	if err := storage.ValidateKey(key); err != nil {
		http.Error(w, "bad recording key", http.StatusBadRequest)
		return
	}
	mediaType, ok := mediaTypes[path.Ext(key)]
	if !ok {
		http.Error(w, "no such recording: "+key+" (/vod/ serves media: .mp4 .m4a .m4s .flv .m3u8 .ts, and posters .jpg)", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if p, ok := v.Store.(storage.Presigner); ok && v.Presigned {
		ttl := v.PresignTTL
		if ttl <= 0 {
			ttl = time.Hour
		}
		url, err := p.PresignGet(r.Context(), key, ttl)
		if err != nil {
			v.fail(w, key, err)
			return
		}
		http.Redirect(w, r, url, http.StatusFound)
		return
	}
	obj, err := v.Store.Stat(r.Context(), key)
	if err != nil {
		v.fail(w, key, err)
		return
	}
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	h.Set("Content-Type", mediaType)
	if obj.ETag != "" {
		h.Set("ETag", `"`+obj.ETag+`"`)
	}
	if !obj.ModTime.IsZero() {
		h.Set("Last-Modified", obj.ModTime.UTC().Format(http.TimeFormat))
	}
	if match := r.Header.Get("If-None-Match"); match != "" && obj.ETag != "" && strings.Contains(match, `"`+obj.ETag+`"`) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	rangeHeader := r.Header.Get("Range")
	if ir := r.Header.Get("If-Range"); ir != "" && !ifRangeMatches(ir, obj) {
		// The client's partial copy is of another version: send the whole object.
		rangeHeader = ""
	}
	offset, length, partial, err := parseRange(rangeHeader, obj.Size)
	if err != nil {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", obj.Size))
		http.Error(w, err.Error(), http.StatusRequestedRangeNotSatisfiable)
		return
	}
	status := http.StatusOK
	if partial {
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", offset, offset+length-1, obj.Size))
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	if r.Method == http.MethodHead {
		w.WriteHeader(status)
		return
	}
	rc, _, err := v.Store.Open(r.Context(), key, offset, length)
	if err != nil {
		h.Del("Content-Length")
		h.Del("Content-Range")
		v.fail(w, key, err)
		return
	}
	defer rc.Close()
	w.WriteHeader(status)
	if _, err := io.Copy(w, rc); err != nil && v.Log != nil {
		v.Log.Debug("vod: copy ended", "key", key, "err", err)
	}
}

func (v *VOD) fail(w http.ResponseWriter, key string, err error) {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		http.Error(w, "no such recording: "+key, http.StatusNotFound)
	case errors.Is(err, storage.ErrInvalidKey):
		http.Error(w, "bad recording key", http.StatusBadRequest)
	default:
		if v.Log != nil {
			v.Log.Error("vod: storage", "key", key, "err", err)
		}
		http.Error(w, "storage unavailable", http.StatusBadGateway)
	}
}

// ifRangeMatches evaluates an If-Range validator (RFC 9110 13.1.5): an entity tag
// must match the object's ETag by strong comparison (a weak tag never matches), a date
// must equal its Last-Modified exactly.
func ifRangeMatches(validator string, obj storage.Object) bool {
	if strings.HasPrefix(validator, `"`) || strings.HasPrefix(validator, "W/") {
		return obj.ETag != "" && validator == `"`+obj.ETag+`"`
	}
	t, err := http.ParseTime(validator)
	return err == nil && !obj.ModTime.IsZero() && t.Equal(obj.ModTime.UTC().Truncate(time.Second))
}

// parseRange parses a single-range "bytes=" header (RFC 9110 14.1.2) against an object
// of size bytes. No header means the whole object; so do multiple ranges (players ask
// for one) and other units. A last-byte-pos past the end is clamped to the end; only a
// first-byte-pos at or past the end (or a suffix of an empty object) is unsatisfiable.
func parseRange(h string, size int64) (offset, length int64, partial bool, err error) {
	if h == "" {
		return 0, size, false, nil
	}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, size, false, nil
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok || (first == "" && last == "") || !digits(first) || !digits(last) {
		return 0, 0, false, errors.New("bad range")
	}
	if first == "" { // suffix: the last N bytes
		n := parseClamped(last)
		if n == 0 || size == 0 {
			return 0, 0, false, errors.New("range not satisfiable")
		}
		n = min(n, size)
		return size - n, n, true, nil
	}
	start := parseClamped(first)
	if start >= size {
		return 0, 0, false, errors.New("range not satisfiable")
	}
	end := size - 1
	if last != "" {
		if end = min(parseClamped(last), size-1); end < start {
			return 0, 0, false, errors.New("bad range: last byte before first")
		}
	}
	return start, end - start + 1, true, nil
}

// digits reports whether s holds only ASCII digits (the empty string does).
func digits(s string) bool {
	return strings.Trim(s, "0123456789") == ""
}

// parseClamped parses a string of digits; a number too big for int64 is past any
// object, so it becomes MaxInt64 instead of an error.
func parseClamped(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return math.MaxInt64
	}
	return n
}
