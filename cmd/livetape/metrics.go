package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/livetape/livetape/api"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/recorder"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/stream"
)

// newRegistry starts the metrics registry of a serve node with the Go runtime and the
// job queue; call it before the queue starts, so no job goes uncounted.
func newRegistry(queue *jobs.Queue) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, err
	}
	return reg, queue.Instrument(reg)
}

// metricsHandler adds the live streams and the recorder (read at scrape time) and the
// storage uploads to reg, and returns the /metrics handler behind the API's access rule.
func metricsHandler(reg *prometheus.Registry, hub *stream.Hub, rec *recorder.Recorder, store *countingStore, apiKey string, log *slog.Logger) (http.Handler, error) {
	for _, c := range []prometheus.Collector{&liveCollector{hub: hub}, &recorderCollector{rec: rec}, store.uploadBytes, store.uploadErrors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)})
	return api.Guard(apiKey, log, h), nil
}

// liveCollector reads the hub at scrape time: a stream that ended is simply not
// there any more, so its series end with it.
type liveCollector struct{ hub *stream.Hub }

var (
	streamBitrateDesc = prometheus.NewDesc("livetape_stream_ingress_kbps",
		"Bitrate pushed over the last 5 s of media time, by track (video, audio).", []string{"app", "stream", "track"}, nil)
	streamFPSDesc = prometheus.NewDesc("livetape_stream_fps",
		"Video frames per second pushed over the last 5 s of media time.", []string{"app", "stream"}, nil)
	streamViewersDesc = prometheus.NewDesc("livetape_stream_viewers",
		"Viewers of a live stream by protocol (http-flv, rtmp, hls).", []string{"app", "stream", "protocol"}, nil)
	streamBytesInDesc = prometheus.NewDesc("livetape_stream_ingress_bytes_total",
		"Bytes pushed to a live stream since its push started.", []string{"app", "stream"}, nil)
	connectionsDesc = prometheus.NewDesc("livetape_connections",
		"Open connections by protocol: publishers (rtmp-publish) and viewers (http-flv, rtmp, hls).", []string{"protocol"}, nil)
	liveStreamsDesc = prometheus.NewDesc("livetape_live_streams", "Streams live on this node.", nil, nil)
)

func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{streamBitrateDesc, streamFPSDesc, streamViewersDesc, streamBytesInDesc, connectionsDesc, liveStreamsDesc} {
		ch <- d
	}
}

func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	streams := c.hub.Streams()
	conns := make(map[stream.Protocol]int, len(stream.Protocols))
	for _, s := range streams {
		st := s.Stats()
		app, id := st.App, st.StreamID
		ch <- prometheus.MustNewConstMetric(streamBitrateDesc, prometheus.GaugeValue, st.VideoKbps, app, id, "video")
		ch <- prometheus.MustNewConstMetric(streamBitrateDesc, prometheus.GaugeValue, st.AudioKbps, app, id, "audio")
		ch <- prometheus.MustNewConstMetric(streamFPSDesc, prometheus.GaugeValue, st.FPS, app, id)
		ch <- prometheus.MustNewConstMetric(streamBytesInDesc, prometheus.CounterValue, float64(st.BytesIn), app, id)
		for _, p := range stream.Protocols {
			ch <- prometheus.MustNewConstMetric(streamViewersDesc, prometheus.GaugeValue, float64(st.Viewers[p]), app, id, p.String())
			conns[p] += st.Viewers[p]
		}
	}
	ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(len(streams)), "rtmp-publish")
	for _, p := range stream.Protocols {
		ch <- prometheus.MustNewConstMetric(connectionsDesc, prometheus.GaugeValue, float64(conns[p]), p.String())
	}
	ch <- prometheus.MustNewConstMetric(liveStreamsDesc, prometheus.GaugeValue, float64(len(streams)))
}

// recorderCollector reads the recorder's counters at scrape time.
type recorderCollector struct{ rec *recorder.Recorder }

var (
	recordingsDesc = prometheus.NewDesc("livetape_recordings_total",
		"Fragments (HLS: segments) recorded and handed on for upload, by format.", []string{"format"}, nil)
	recordedBytesDesc = prometheus.NewDesc("livetape_recorded_bytes_total",
		"Bytes of the fragments recorded, by format.", []string{"format"}, nil)
	fragmentsLostDesc = prometheus.NewDesc("livetape_fragments_lost_total",
		"Fragments (one per format) abandoned because writing them failed.", nil, nil)
	recordingGapsDesc = prometheus.NewDesc("livetape_recording_gaps_total",
		"Recordings cut because the recorder fell behind the stream and lost packets.", nil, nil)
)

func (c *recorderCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{recordingsDesc, recordedBytesDesc, fragmentsLostDesc, recordingGapsDesc} {
		ch <- d
	}
}

func (c *recorderCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.rec.Counters()
	for _, f := range []string{stream.FormatMP4, stream.FormatHLS, stream.FormatFLV} {
		ch <- prometheus.MustNewConstMetric(recordingsDesc, prometheus.CounterValue, float64(n.Fragments[f]), f)
		ch <- prometheus.MustNewConstMetric(recordedBytesDesc, prometheus.CounterValue, float64(n.Bytes[f]), f)
	}
	ch <- prometheus.MustNewConstMetric(fragmentsLostDesc, prometheus.CounterValue, float64(n.Lost))
	ch <- prometheus.MustNewConstMetric(recordingGapsDesc, prometheus.CounterValue, float64(n.Gaps))
}

// countingStore counts what the upload job puts into storage.
type countingStore struct {
	storage.Store
	uploadBytes  prometheus.Counter
	uploadErrors prometheus.Counter
}

func newCountingStore(s storage.Store) *countingStore {
	return &countingStore{
		Store: s,
		uploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livetape_storage_upload_bytes_total", Help: "Bytes of recordings uploaded to the storage.",
		}),
		uploadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "livetape_storage_upload_errors_total", Help: "Recording uploads (one per object) that failed.",
		}),
	}
}

func (c *countingStore) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (storage.Object, error) {
	obj, err := c.Store.Put(ctx, key, r, size, contentType)
	return obj, c.count(size, err)
}

// PutFile keeps the store's own way of storing a file (storage.FilePutter).
func (c *countingStore) PutFile(ctx context.Context, key, path, contentType string) (storage.Object, error) {
	obj, err := storage.PutFile(ctx, c.Store, key, path, contentType)
	return obj, c.count(obj.Size, err)
}

func (c *countingStore) count(size int64, err error) error {
	if err != nil {
		c.uploadErrors.Inc()
	} else {
		c.uploadBytes.Add(float64(size))
	}
	return err
}
