package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/live/sign"
)

// browser is a headless Chromium page driven over the DevTools protocol, with what
// its console and its uncaught exceptions said.
type browser struct {
	ctx    context.Context
	mu     sync.Mutex
	errors []string
}

// startChromium starts Debian's chromium headless (as root: no sandbox) with a fresh
// profile and no network of its own (updates, sync, QUIC), and opens a tab.
func startChromium(t *testing.T) *browser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		mediatest.MissingTool(t, "chromium not installed (scripts/test.sh installs it)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Env("TMPDIR="+t.TempDir()), // its singleton socket, removed with the test
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		// Close the browser and wait for it to exit before its profile is removed.
		if err := chromedp.Cancel(ctx); err != nil {
			t.Logf("closing chromium: %v", err)
		}
		cancelTab()
		cancelAlloc()
	})
	b := &browser{ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg = "exception: " + ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				msg += " " + ev.ExceptionDetails.Exception.Description
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.APITypeError && ev.Type != runtime.APITypeAssert {
				return
			}
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			msg = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
		case *cdplog.EventEntryAdded:
			if ev.Entry.Level != cdplog.LevelError {
				return
			}
			msg = fmt.Sprintf("%s error: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		default:
			return
		}
		b.mu.Lock()
		b.errors = append(b.errors, msg)
		b.mu.Unlock()
	})
	if err := chromedp.Run(ctx); err != nil { // starts the browser
		t.Fatalf("chromium: %v", err)
	}
	return b
}

func (b *browser) run(t *testing.T, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v\npage:\n%s", what, err, b.text())
	}
}

// eval evaluates a JavaScript expression (a promise: its value); false when it failed.
func (b *browser) eval(expr string, out any) bool {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	await := func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }
	return chromedp.Run(ctx, chromedp.Evaluate(expr, out, await)) == nil
}

// text is what the page shows, for failure messages.
func (b *browser) text() string {
	var s string
	b.eval(`document.body.innerText`, &s)
	return s
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

// waitPlaying waits for the <video> of that id to play: its currentTime passes 0,
// then advances by a second more.
func (b *browser) waitPlaying(t *testing.T, id string) {
	t.Helper()
	expr := `document.getElementById("` + id + `").currentTime`
	var start float64
	mediatest.WaitFor(t, id+" to start playing", 20*time.Second, func() bool { return b.eval(expr, &start) && start > 0 })
	mediatest.WaitFor(t, id+" to advance by 1 s", 15*time.Second, func() bool {
		var now float64
		return b.eval(expr, &now) && now >= start+1
	})
}

// The console in a real browser: the page loads with no console errors, lists the live
// push with its stats, plays it over HTTP-FLV and HLS, and plays its recordings (MP4
// and HLS) from the catalog.
func TestConsoleInChromium(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	b := startChromium(t)
	cfg := pipelineConfig(t, &receiver{t: t, hits: map[string]int{}})
	cfg.Live.PushKey, cfg.Live.PlayKey = "pushkey", "playkey" // the page plays with URLs it has the API sign
	cfg.APIKey = "apikey"
	r := startServe(t, cfg)
	pushURL := func(id, extra string) string {
		return "rtmp://" + r.rtmpAddr + "/live/" + id + "?" + sign.Query("pushkey", id, time.Now().Add(time.Hour)).Encode() + extra
	}
	mediatest.Push(t, pushURL("rec", "&record=mp4|hls&record_reconnect_window=0"), 4)
	mediatest.Push(t, pushURL("cam", ""), 60)

	// Without the key the page says what to do; the key entered once is kept.
	b.run(t, "open the console", chromedp.Navigate(r.httpURL+"/console/"))
	var banner string
	mediatest.WaitFor(t, "the page to ask for the API key", 10*time.Second, func() bool {
		return b.eval(`document.getElementById("banner").innerText`, &banner) && strings.Contains(banner, "requires an API key")
	})
	b.mu.Lock()
	b.errors = nil // the browser logs the 401 answers
	b.mu.Unlock()
	b.run(t, "enter the API key", chromedp.SetValue(`#key`, "apikey", chromedp.ByID), chromedp.Click(`#key-form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`tr[data-stream="live/cam"]`, chromedp.ByQuery),
		chromedp.Reload(), chromedp.WaitVisible(`tr[data-stream="live/cam"]`, chromedp.ByQuery))
	var row string
	mediatest.WaitFor(t, "the stream's stats in its row", 10*time.Second, func() bool {
		return b.eval(`document.querySelector('tr[data-stream="live/cam"]').innerText`, &row) &&
			strings.Contains(row, "avc1.") && strings.Contains(row, "320×240") && strings.Contains(row, "mp4a.40.2")
	})

	// Record start and stop from the row's buttons.
	b.run(t, "start recording", chromedp.Click(`tr[data-stream="live/cam"] button[data-action="record-start"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`tr[data-stream="live/cam"] button[data-action="record-stop"]`, chromedp.ByQuery),
		chromedp.Click(`tr[data-stream="live/cam"] button[data-action="record-stop"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`tr[data-stream="live/cam"] button[data-action="record-start"]`, chromedp.ByQuery))

	// The push-URL generator signs with the server's push key.
	var push string
	b.run(t, "sign a push URL", chromedp.SetValue(`#sign-form [name="stream_id"]`, "new1", chromedp.ByQuery),
		chromedp.Click(`#sign-form [name="record"][value="mp4"]`, chromedp.ByQuery),
		chromedp.Click(`#sign-form button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#sign-out`, chromedp.ByID), chromedp.Value(`#sign-push`, &push, chromedp.ByID))
	if u, err := url.Parse(push); err != nil || u.Scheme != "rtmp" || u.Path != "/live/new1" || u.Query().Get("record") != "mp4" ||
		sign.Verify([]string{"pushkey"}, "new1", u.Query().Get("txSecret"), u.Query().Get("txTime"), time.Now()) != nil {
		t.Errorf("signed push URL %q", push)
	}

	b.run(t, "play HTTP-FLV", chromedp.Click(`tr[data-stream="live/cam"] button[data-action="play-flv"]`, chromedp.ByQuery))
	b.waitPlaying(t, "live-video")
	b.run(t, "play HLS", chromedp.Click(`tr[data-stream="live/cam"] button[data-action="play-hls"]`, chromedp.ByQuery))
	b.waitPlaying(t, "live-video")

	mediatest.WaitFor(t, "the recordings in the catalog", 30*time.Second, func() bool {
		var n int
		return b.eval(`fetch("/api/v1/recordings?stream_id=rec", {headers: {Authorization: "Bearer " + localStorage.getItem("livetape.apiKey")}})
			.then((r) => r.json()).then((j) => j.total)`, &n) && n == 2
	})
	for _, format := range []string{"mp4", "hls"} {
		b.run(t, "list the "+format+" recording",
			chromedp.SetValue(`#rec-filter [name="stream_id"]`, "rec", chromedp.ByQuery),
			chromedp.SetValue(`#rec-filter [name="format"]`, format, chromedp.ByQuery),
			chromedp.Click(`#rec-filter button[type="submit"]`, chromedp.ByQuery),
			chromedp.WaitVisible(`#recordings-body tr[data-file-id$="_`+format+`"] button[data-action="play-recording"]`, chromedp.ByQuery),
			chromedp.Click(`#recordings-body tr[data-file-id$="_`+format+`"] button[data-action="play-recording"]`, chromedp.ByQuery))
		b.waitPlaying(t, "vod-video")
	}

	// A job from the page: stitch the MP4 recording; the jobs panel follows it to
	// completed and plays its output.
	b.run(t, "stitch the mp4 recording",
		chromedp.SetValue(`#rec-filter [name="format"]`, "mp4", chromedp.ByQuery),
		chromedp.Click(`#rec-filter button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#recordings-body tr[data-file-id$="_mp4"] input[name="pick"]`, chromedp.ByQuery),
		chromedp.Click(`#recordings-body tr[data-file-id$="_mp4"] input[name="pick"]`, chromedp.ByQuery),
		chromedp.Click(`#stitch`, chromedp.ByID))
	mediatest.WaitFor(t, "the stitch job completed in the jobs panel", 60*time.Second, func() bool {
		var state string
		// The page refreshes its jobs every 2 s.
		b.eval(`(() => { const r = document.querySelector("#jobs-body tr"); return r ? r.children[2].innerText : ""; })()`, &state)
		return state == "completed"
	})
	b.run(t, "play the stitched output", chromedp.Click(`#jobs-body tr button[data-action="play-job"]`, chromedp.ByQuery))
	b.waitPlaying(t, "vod-video")

	// Kick: the page asks for a ban (answered 0: none) and the stream leaves the list.
	// The player is stopped first: a player of an ended stream fails, and says so.
	var ok bool
	b.eval(`window.prompt = () => "0"; true`, &ok)
	b.run(t, "kick", chromedp.Click(`#live-stop`, chromedp.ByID), chromedp.Click(`tr[data-stream="live/cam"] button[data-action="kick"]`, chromedp.ByQuery),
		chromedp.WaitNotPresent(`tr[data-stream="live/cam"]`, chromedp.ByQuery))

	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
	if b.eval(`document.getElementById("banner").hidden ? "" : document.getElementById("banner").innerText`, &banner); banner != "" {
		t.Errorf("the page says: %s", banner)
	}
}

// The queue dashboard (asynqmon) answers at /admin/queues behind the API key: a
// browser is asked for it (HTTP Basic, the key as password), the dashboard's data API
// lists this node's queues.
func TestQueueDashboard(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	cfg := pipelineConfig(t, &receiver{t: t, hits: map[string]int{}})
	cfg.APIKey = "apikey"
	r := startServe(t, cfg)
	get := func(path string, auth func(*http.Request)) (*http.Response, string) {
		req, _ := http.NewRequest("GET", r.httpURL+path, nil)
		if auth != nil {
			auth(req)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, p := range []string{"/admin/queues", "/admin/queues/", "/admin/queues/api/queues"} {
		resp, _ := get(p, nil)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Errorf("%s without the key: %d %q, want 401 asking for Basic", p, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		if resp, _ := get(p, func(r *http.Request) { r.SetBasicAuth("admin", "wrong") }); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s with a wrong key: %d, want 401", p, resp.StatusCode)
		}
	}
	basic := func(r *http.Request) { r.SetBasicAuth("admin", "apikey") }
	resp, page := get("/admin/queues/", basic)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "/admin/queues") || !strings.Contains(strings.ToLower(page), "asynq") {
		t.Errorf("dashboard page: %d %.300s", resp.StatusCode, page)
	}

	// A recorded push queues an upload on this node's queue; the dashboard lists it.
	mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/dash?record=mp4", 2)
	var body string
	defer func() {
		if t.Failed() {
			t.Logf("last answer: %s", body)
		}
	}()
	mediatest.WaitFor(t, "the dashboard to list this node's queue", 20*time.Second, func() bool {
		var resp *http.Response
		resp, body = get("/admin/queues/api/queues", func(r *http.Request) { r.Header.Set("Authorization", "Bearer apikey") })
		var queues struct {
			Queues []struct {
				Queue string `json:"queue"`
			} `json:"queues"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &queues) != nil {
			t.Fatalf("dashboard queues: %d %.300s", resp.StatusCode, body)
		}
		for _, q := range queues.Queues {
			if strings.HasPrefix(q.Queue, "node:") {
				return true
			}
		}
		return false
	})
}
