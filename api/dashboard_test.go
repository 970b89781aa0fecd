package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDashboardGuard(t *testing.T) {
	behind := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("dashboard")) })
	guarded := Dashboard("k3y", nil, behind)

	type req struct {
		name, method string
		header       []string // pairs
		basic        []string // user, password
		want         int
	}
	for _, c := range []req{
		{name: "no credentials", method: "GET", want: 401},
		{name: "basic, the key", method: "GET", basic: []string{"admin", "k3y"}, want: 200},
		{name: "basic, any user", method: "GET", basic: []string{"", "k3y"}, want: 200},
		{name: "basic, wrong key", method: "GET", basic: []string{"admin", "nope"}, want: 401},
		{name: "bearer", method: "GET", header: []string{"Authorization", "Bearer k3y"}, want: 200},
		{name: "bearer, wrong key", method: "GET", header: []string{"Authorization", "Bearer k3"}, want: 401},
		{name: "bare key", method: "GET", header: []string{"Authorization", "k3y"}, want: 401},
		{name: "write, same origin", method: "POST", basic: []string{"a", "k3y"}, header: []string{"Sec-Fetch-Site", "same-origin"}, want: 200},
		{name: "write, cross-site", method: "POST", basic: []string{"a", "k3y"}, header: []string{"Sec-Fetch-Site", "cross-site"}, want: 403},
		{name: "write, same site other origin", method: "DELETE", basic: []string{"a", "k3y"}, header: []string{"Sec-Fetch-Site", "same-site"}, want: 403},
		{name: "write, other Origin", method: "POST", basic: []string{"a", "k3y"}, header: []string{"Origin", "http://evil.example"}, want: 403},
		{name: "write, this Origin", method: "POST", basic: []string{"a", "k3y"}, header: []string{"Origin", "http://example.com"}, want: 200},
		{name: "write, no browser headers", method: "POST", header: []string{"Authorization", "Bearer k3y"}, want: 200},
		{name: "read, cross-site", method: "GET", basic: []string{"a", "k3y"}, header: []string{"Sec-Fetch-Site", "cross-site"}, want: 200},
	} {
		r := httptest.NewRequest(c.method, "http://example.com/admin/queues/api/queues", nil)
		r.RemoteAddr = "192.0.2.7:4000"
		for i := 0; i+1 < len(c.header); i += 2 {
			r.Header.Set(c.header[i], c.header[i+1])
		}
		if c.basic != nil {
			r.SetBasicAuth(c.basic[0], c.basic[1])
		}
		w := httptest.NewRecorder()
		guarded.ServeHTTP(w, r)
		if w.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.name, w.Code, w.Body, c.want)
		}
		// A browser (no credentials yet, or wrong Basic ones) is asked for the key.
		browser := c.basic != nil || r.Header.Get("Authorization") == ""
		if w.Code == 401 && browser && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s: 401 with WWW-Authenticate %q: a browser would not ask for the key", c.name, w.Header().Get("WWW-Authenticate"))
		}
		if (w.Code == 200) != (w.Body.String() == "dashboard") {
			t.Errorf("%s: %d with body %q", c.name, w.Code, w.Body)
		}
	}

	// Without a key: loopback clients only, as /api/v1.
	open := Dashboard("", nil, behind)
	for addr, want := range map[string]int{"127.0.0.1:5000": 200, "[::1]:5000": 200, "192.0.2.7:4000": 403} {
		r := httptest.NewRequest("GET", "/admin/queues/", nil)
		r.RemoteAddr = addr
		w := httptest.NewRecorder()
		open.ServeHTTP(w, r)
		if w.Code != want {
			t.Errorf("no key, client %s: %d, want %d", addr, w.Code, want)
		}
	}
	r := httptest.NewRequest("POST", "/admin/queues/api/queues/default:pause", nil)
	r.RemoteAddr = "127.0.0.1:5000"
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	w := httptest.NewRecorder()
	open.ServeHTTP(w, r)
	if w.Code != http.StatusForbidden {
		t.Errorf("no key, cross-site write from a loopback browser: %d, want 403", w.Code)
	}
}
