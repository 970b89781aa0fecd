package api

import (
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
)

// Dashboard guards a browser application (the queue dashboard at /admin/queues) with
// the API's rule: without a key, loopback clients only; with a key, the key as
// "Authorization: Bearer KEY" or as the password of HTTP Basic authentication (any
// user name). Basic is there because the dashboard's own page fetches its data: a
// browser asks for the password once and sends it on every request, which it cannot
// do with a bearer token. Since a browser sends Basic credentials (and a loopback
// address is reachable) from any site's page too, requests that change something must
// come from this origin.
func Dashboard(key string, log *slog.Logger, h http.Handler) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &apiHandler{cfg: Config{Key: key, Log: log}}
	sameOrigin := sameOriginWrites(log, h)
	if key == "" {
		return a.loopbackOnly(sameOrigin)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pass, ok := r.BasicAuth(); ok {
			if subtle.ConstantTimeCompare([]byte(pass), []byte(key)) == 1 {
				sameOrigin.ServeHTTP(w, r)
				return
			}
		} else if r.Header.Get("Authorization") != "" {
			a.bearer(sameOrigin).ServeHTTP(w, r)
			return
		}
		log.Warn("api: refused a dashboard request without the right API key", "client", r.RemoteAddr, "path", r.URL.Path)
		w.Header().Set("WWW-Authenticate", `Basic realm="livetape (password: the API key)", charset="UTF-8"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong API key (HTTP Basic with the key as password, or Authorization: Bearer KEY)")
	})
}

// sameOriginWrites refuses requests other than GET, HEAD and OPTIONS that a browser
// says come from another site (Sec-Fetch-Site, or else an Origin of another host).
// Clients that are not browsers send neither header and pass.
func sameOriginWrites(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			h.ServeHTTP(w, r)
			return
		}
		cross := false
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
			cross = site != "same-origin" && site != "none"
		} else if origin := r.Header.Get("Origin"); origin != "" {
			u, err := url.Parse(origin)
			cross = err != nil || u.Host != r.Host
		}
		if cross {
			log.Warn("api: refused a cross-site dashboard request", "client", r.RemoteAddr, "path", r.URL.Path,
				"origin", r.Header.Get("Origin"))
			writeError(w, http.StatusForbidden, "cross-site requests may not change the queues")
			return
		}
		h.ServeHTTP(w, r)
	})
}
