package transcoder

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// benchSource is a 10 s 720p30 noisy source (300 frames) for the benchmarks.
func benchSource(b *testing.B) (path string, frames int) {
	b.Helper()
	dir := b.TempDir()
	return makeSource(b, dir, 1280, 720, 10), 300
}

// cliOutputArgs are the ffmpeg CLI options that produce what Transcode produces for
// one MP4 output: same scale chain, x264 preset, rate control, GOP and AAC settings.
func cliOutputArgs(t Template, srcW, srcH int, path string) []string {
	w, h := t.Size(srcW, srcH)
	args := []string{"-map", "0:v:0", "-map", "0:a:0",
		"-vf", fmt.Sprintf("scale=%d:%d,setsar=1,format=yuv420p", w, h),
		"-c:v", "libx264", "-b:v", strconv.Itoa(t.VideoKbps) + "k",
		"-g", strconv.Itoa(2 * int(30*GOP.Seconds())),
		"-force_key_frames", fmt.Sprintf("expr:gte(t,n_forced*%g)", GOP.Seconds()),
	}
	for k, v := range x264Options(t) {
		args = append(args, "-"+k, v)
	}
	return append(args, "-c:a", "aac", "-b:a", strconv.Itoa(t.AudioKbps)+"k", "-ac", "2",
		"-movflags", "+faststart", path)
}

// reportFPS reports frames per wall-clock second and the CPU seconds per run: on a
// shared machine the wall clock drifts with the load, the CPU time much less.
func reportFPS(b *testing.B, frames int, cpu time.Duration) {
	b.ReportMetric(float64(frames*b.N)/b.Elapsed().Seconds(), "fps")
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

// selfCPU is the CPU time (user + system) this process has used.
func selfCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runFFmpegCPU runs the ffmpeg CLI and returns its CPU time.
func runFFmpegCPU(b *testing.B, args ...string) time.Duration {
	b.Helper()
	cmd := exec.Command("ffmpeg", args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// BenchmarkSD720p: 720p30 → 360p (sd), x264 veryfast, in-process against the ffmpeg
// CLI with the same settings, side by side: compare the fps metrics.
func BenchmarkSD720p(b *testing.B) {
	src, frames := benchSource(b)
	sd, _ := FindTemplate(DefaultTemplates(), "sd")
	b.Run("in-process", func(b *testing.B) {
		out := filepath.Join(b.TempDir(), "sd.mp4")
		start := selfCPU(b)
		for b.Loop() {
			if _, err := Transcode(context.Background(), src, []Output{{Template: sd, Format: FormatMP4, Path: out}}, nil); err != nil {
				b.Fatal(err)
			}
		}
		reportFPS(b, frames, selfCPU(b)-start)
	})
	b.Run("ffmpeg-cli", func(b *testing.B) {
		out := filepath.Join(b.TempDir(), "sd.mp4")
		var cpu time.Duration
		for b.Loop() {
			cpu += runFFmpegCPU(b, append([]string{"-v", "error", "-y", "-i", src}, cliOutputArgs(sd, 1280, 720, out)...)...)
		}
		reportFPS(b, frames, cpu)
	})
}

// BenchmarkLadder720p: one source → sd+hd+uhd MP4s: one in-process decode feeding
// three encoders, against three ffmpeg CLI runs, and against one CLI run with three
// outputs (which also decodes once).
func BenchmarkLadder720p(b *testing.B) {
	src, frames := benchSource(b)
	tpls := DefaultTemplates()
	b.Run("in-process", func(b *testing.B) {
		dir := b.TempDir()
		var outputs []Output
		for _, t := range tpls {
			outputs = append(outputs, Output{Template: t, Format: FormatMP4, Path: filepath.Join(dir, t.Name+".mp4")})
		}
		start := selfCPU(b)
		for b.Loop() {
			if _, err := Transcode(context.Background(), src, outputs, nil); err != nil {
				b.Fatal(err)
			}
		}
		reportFPS(b, frames, selfCPU(b)-start)
	})
	b.Run("ffmpeg-cli-3-runs", func(b *testing.B) {
		dir := b.TempDir()
		var cpu time.Duration
		for b.Loop() {
			for _, t := range tpls {
				cpu += runFFmpegCPU(b, append([]string{"-v", "error", "-y", "-i", src}, cliOutputArgs(t, 1280, 720, filepath.Join(dir, t.Name+".mp4"))...)...)
			}
		}
		reportFPS(b, frames, cpu)
	})
	b.Run("ffmpeg-cli-3-outputs", func(b *testing.B) {
		dir := b.TempDir()
		var cpu time.Duration
		for b.Loop() {
			args := []string{"-v", "error", "-y", "-i", src}
			for _, t := range tpls {
				args = append(args, cliOutputArgs(t, 1280, 720, filepath.Join(dir, t.Name+".mp4"))...)
			}
			cpu += runFFmpegCPU(b, args...)
		}
		reportFPS(b, frames, cpu)
	})
}
