package transcoder

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TranscodeABR writes an HLS ABR set into dir: one variant per template in
// dir/NAME/index.m3u8 (from one decode, keyframes and so segment boundaries at the
// same timestamps in every variant) and dir/master.m3u8 listing them with BANDWIDTH,
// AVERAGE-BANDWIDTH, RESOLUTION, FRAME-RATE and CODECS. dir appears only once complete
// (an existing one is replaced).
func TranscodeABR(ctx context.Context, inputPath, dir string, templates []Template, progress func(Progress)) (Result, error) {
	if len(templates) == 0 {
		return Result{}, errors.New("transcoder: ABR set without templates")
	}
	tmp := dir + ".partial"
	os.RemoveAll(tmp) // what a killed process left
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return Result{}, fmt.Errorf("transcoder: %w", err)
	}
	res, err := func() (Result, error) {
		outputs := make([]Output, len(templates))
		for i, t := range templates {
			outputs[i] = Output{Template: t, Format: FormatHLS, Path: filepath.Join(tmp, t.Name)}
		}
		res, err := Transcode(ctx, inputPath, outputs, progress)
		if err != nil {
			return Result{}, err
		}
		var variants []variant
		for _, r := range res.Outputs {
			v, err := measureVariant(filepath.Join(tmp, r.Template), r)
			if err != nil {
				return Result{}, err
			}
			variants = append(variants, v)
		}
		if err := os.WriteFile(filepath.Join(tmp, MasterPlaylist), masterPlaylist(variants), 0o644); err != nil {
			return Result{}, fmt.Errorf("transcoder: write master playlist: %w", err)
		}
		return res, nil
	}()
	if err != nil {
		os.RemoveAll(tmp)
		return Result{}, err
	}
	if err := commit(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return Result{}, err
	}
	for i := range res.Outputs {
		res.Outputs[i].Path = filepath.Join(dir, res.Outputs[i].Template)
	}
	return res, nil
}

// variant is one entry of a master playlist.
type variant struct {
	Rendition
	uri           string
	peak, average int64 // bits/s of the segment files, MPEG-TS overhead included
}

// measureVariant reads a variant playlist and the sizes of its segments: BANDWIDTH is
// the peak segment bitrate, as RFC 8216 asks, AVERAGE-BANDWIDTH the mean.
func measureVariant(dir string, r Rendition) (variant, error) {
	segs, err := ReadMediaPlaylist(filepath.Join(dir, hlsPlaylist))
	if err != nil {
		return variant{}, err
	}
	v := variant{Rendition: r, uri: r.Template + "/" + hlsPlaylist}
	var total time.Duration
	var totalBytes int64
	for _, s := range segs {
		fi, err := os.Stat(filepath.Join(dir, s.URI))
		if err != nil {
			return variant{}, fmt.Errorf("transcoder: variant %s: %w", r.Template, err)
		}
		total += s.Duration
		totalBytes += fi.Size()
		if s.Duration > 0 {
			v.peak = max(v.peak, int64(float64(fi.Size()*8)/s.Duration.Seconds()))
		}
	}
	if total > 0 {
		v.average = int64(float64(totalBytes*8) / total.Seconds())
	}
	return v, nil
}

func masterPlaylist(variants []variant) []byte {
	variants = slices.Clone(variants)
	slices.SortStableFunc(variants, func(a, b variant) int { return int(a.peak - b.peak) })
	var b bytes.Buffer
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	for _, v := range variants {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,RESOLUTION=%dx%d,FRAME-RATE=%.3f,CODECS=\"%s\"\n%s\n",
			v.peak, v.average, v.Width, v.Height, v.FrameRate, v.Codecs, v.uri)
	}
	return b.Bytes()
}

// Segment is one entry of a media playlist.
type Segment struct {
	Duration time.Duration // EXTINF
	URI      string
}

// ReadMediaPlaylist lists the segments of an HLS media playlist on disk.
func ReadMediaPlaylist(path string) ([]Segment, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("transcoder: read playlist: %w", err)
	}
	var segs []Segment
	var pending *time.Duration
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "#EXTINF:"):
			secs, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			f, err := strconv.ParseFloat(secs, 64)
			if err != nil {
				return nil, fmt.Errorf("transcoder: playlist %q: bad EXTINF %q", path, line)
			}
			d := time.Duration(f * float64(time.Second))
			pending = &d
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			if pending == nil {
				return nil, fmt.Errorf("transcoder: playlist %q: URI %q without EXTINF", path, line)
			}
			segs = append(segs, Segment{Duration: *pending, URI: line})
			pending = nil
		}
	}
	return segs, sc.Err()
}
