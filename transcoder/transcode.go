package transcoder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/asticode/go-astiav"
)

// Preset is the x264 speed/quality preset of every rendition.
const Preset = "veryfast"

// hlsPlaylist is the name of a variant's playlist inside its directory.
const hlsPlaylist = "index.m3u8"

// Transcode decodes input once and encodes it into every output: each gets its own
// filter graph (scale, fps cap, audio resampling) and encoders (libx264 + AAC), and all
// get keyframes at the same timestamps. It stops at ctx's cancel and leaves no output
// behind on any error. progress, if not nil, is called from Transcode's goroutine about
// every half second of media.
func Transcode(ctx context.Context, inputPath string, outputs []Output, progress func(Progress)) (Result, error) {
	if len(outputs) == 0 {
		return Result{}, errors.New("transcoder: no outputs")
	}
	seen := map[string]bool{}
	for _, o := range outputs {
		if err := o.Template.Validate(); err != nil {
			return Result{}, fmt.Errorf("transcoder: %w", err)
		}
		if o.Format != FormatMP4 && o.Format != FormatHLS {
			return Result{}, fmt.Errorf("transcoder: unknown format %q", o.Format)
		}
		if o.Path == "" || seen[filepath.Clean(o.Path)] {
			return Result{}, fmt.Errorf("transcoder: output path %q empty or used twice", o.Path)
		}
		seen[filepath.Clean(o.Path)] = true
	}
	routeLogs()

	var c closer
	var rends []*rendition
	res, err := func() (Result, error) {
		in, err := openInput(ctx, &c, inputPath)
		if err != nil {
			return Result{}, err
		}
		for _, o := range outputs {
			r, err := openRendition(&c, in, o)
			if r != nil {
				rends = append(rends, r) // so that a failure removes what it created
			}
			if err != nil {
				return Result{}, err
			}
		}
		if err := run(ctx, in, rends, progress); err != nil {
			return Result{}, err
		}
		res := Result{Duration: in.duration}
		for _, r := range rends {
			if err := r.finish(); err != nil {
				return Result{}, err
			}
			res.Outputs = append(res.Outputs, r.describe(in))
		}
		return res, nil
	}()
	c.close()
	if err != nil {
		for _, r := range rends {
			os.RemoveAll(r.tmpPath)
		}
		return Result{}, err
	}
	for i, r := range rends {
		if err := commit(r.tmpPath, r.out.Path); err != nil {
			for _, r := range rends[i:] {
				os.RemoveAll(r.tmpPath)
			}
			return Result{}, err
		}
	}
	return res, nil
}

// commit moves a finished output from its temporary name to its final one.
func commit(tmp, final string) error {
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		if err := os.RemoveAll(final); err != nil {
			return fmt.Errorf("transcoder: replace %q: %w", final, err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("transcoder: commit %q: %w", final, err)
	}
	return nil
}

// run reads every packet of in, decodes it and feeds the renditions, then flushes
// decoders, filters and encoders.
func run(ctx context.Context, in *input, rends []*rendition, progress func(Progress)) error {
	pkt := astiav.AllocPacket()
	if pkt == nil {
		return errors.New("transcoder: alloc packet")
	}
	defer pkt.Free()

	const reportEvery = 500 * time.Millisecond
	var reported time.Duration = -reportEvery
	onVideo := func(f *astiav.Frame) error {
		for _, r := range rends {
			if err := r.video.filter(r, f); err != nil {
				return err
			}
		}
		if progress != nil && f.Pts() != astiav.NoPtsValue {
			done := toDuration(f.Pts()-max(0, in.video.stream.StartTime()), in.video.stream.TimeBase())
			if done-reported >= reportEvery {
				reported = done
				progress(Progress{Done: done, Total: in.duration})
			}
		}
		return nil
	}
	onAudio := func(f *astiav.Frame) error {
		for _, r := range rends {
			if err := r.audio.filter(r, f); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("transcoder: %w", err)
		}
		if err := in.fc.ReadFrame(pkt); err != nil {
			if errors.Is(err, astiav.ErrEof) {
				break
			}
			return inputError(ctx, "read", err)
		}
		var err error
		switch idx := pkt.StreamIndex(); {
		case idx == in.video.stream.Index():
			err = in.video.decode(ctx, pkt, onVideo)
		case in.audio != nil && idx == in.audio.stream.Index():
			err = in.audio.decode(ctx, pkt, onAudio)
		}
		pkt.Unref()
		if err != nil {
			return err
		}
	}
	if err := in.video.decode(ctx, nil, onVideo); err != nil {
		return err
	}
	if in.audio != nil {
		if err := in.audio.decode(ctx, nil, onAudio); err != nil {
			return err
		}
	}
	for _, r := range rends {
		if err := r.video.filter(r, nil); err != nil {
			return err
		}
		if err := r.audio.filter(r, nil); err != nil {
			return err
		}
	}
	if progress != nil {
		progress(Progress{Done: in.duration, Total: in.duration})
	}
	return nil
}

// rendition is one output being written.
type rendition struct {
	out     Output
	tmpPath string // the MP4 file or HLS directory while it is written
	fc      *astiav.FormatContext
	pb      *astiav.IOContext // nil for muxers that open their own files (HLS)
	video   *encoder
	audio   *encoder // nil when the source has no audio
	width   int
	height  int
	fps     astiav.Rational
	codecs  string
}

// encoder is one stream of a rendition: its filter graph, encoder and output stream.
type encoder struct {
	filters  *filterGraph
	cc       *astiav.CodecContext
	stream   *astiav.Stream
	filtered *astiav.Frame
	pkt      *astiav.Packet
	bytes    int64
	// nextKey is the timestamp from which the next frame is forced to be a keyframe
	// (video only): multiples of GOP from the first frame, the same in every rendition.
	nextKey    time.Duration
	keyStarted bool
	// frameDuration is one frame in the encoder's time base (video only).
	frameDuration int64
}

func openRendition(c *closer, in *input, o Output) (*rendition, error) {
	r := &rendition{out: o, tmpPath: o.Path + ".partial"}
	muxer, target := "mp4", r.tmpPath
	if o.Format == FormatHLS {
		muxer, target = "hls", filepath.Join(r.tmpPath, hlsPlaylist)
		os.RemoveAll(r.tmpPath) // what a killed process left
		if err := os.MkdirAll(r.tmpPath, 0o755); err != nil {
			return nil, fmt.Errorf("transcoder: %w", err)
		}
	}
	fail := func(err error) (*rendition, error) {
		return r, fmt.Errorf("transcoder: rendition %s (%s) %q: %w", o.Template.Name, o.Format, o.Path, err)
	}
	fc, err := astiav.AllocOutputFormatContext(nil, muxer, target)
	if err != nil {
		return fail(fmt.Errorf("alloc %s muxer: %w", muxer, err))
	}
	if fc == nil {
		return fail(fmt.Errorf("alloc %s muxer", muxer))
	}
	c.add(fc.Free)
	r.fc = fc
	globalHeader := fc.OutputFormat().Flags().Has(astiav.IOFormatFlagGlobalheader)

	if r.video, err = openVideoEncoder(c, in, r, o.Template, globalHeader); err != nil {
		return fail(err)
	}
	if in.audio != nil {
		if r.audio, err = openAudioEncoder(c, in, r, o.Template, globalHeader); err != nil {
			return fail(err)
		}
	}

	if !fc.OutputFormat().Flags().Has(astiav.IOFormatFlagNofile) {
		pb, err := astiav.OpenIOContext(target, astiav.NewIOContextFlags(astiav.IOContextFlagWrite))
		if err != nil {
			return fail(fmt.Errorf("create %q: %w", target, err))
		}
		r.pb = pb
		c.add(func() {
			if r.pb != nil {
				r.pb.Close()
			}
		})
		fc.SetPb(pb)
	}
	opts := astiav.NewDictionary()
	defer opts.Free()
	if o.Format == FormatHLS {
		opts.Set("hls_time", strconv.Itoa(int(GOP/time.Second)), 0)
		opts.Set("hls_playlist_type", "vod", 0)
		opts.Set("hls_list_size", "0", 0)
		opts.Set("hls_flags", "independent_segments", 0)
		opts.Set("hls_segment_filename", filepath.Join(r.tmpPath, "seg_%05d.ts"), 0)
	} else {
		opts.Set("movflags", "+faststart", 0)
	}
	if err := fc.WriteHeader(opts); err != nil {
		return fail(fmt.Errorf("write header: %w", err))
	}
	return r, nil
}

func openVideoEncoder(c *closer, in *input, r *rendition, t Template, globalHeader bool) (*encoder, error) {
	codec := astiav.FindEncoderByName("libx264")
	if codec == nil {
		return nil, errors.New("libx264 encoder missing from libavcodec")
	}
	r.width, r.height = t.Size(in.displayW, in.displayH)
	fps := in.fps
	chain := fmt.Sprintf("scale=%d:%d,setsar=1,format=yuv420p", r.width, r.height)
	if t.MaxFPS > 0 && t.MaxFPS < fps.Float64() {
		fps = astiav.NewRational(int(t.MaxFPS*1000), 1000)
		chain += ",fps=" + fps.String()
	}
	r.fps = fps
	filters, err := newFilterGraph(c, in.video, chain)
	if err != nil {
		return nil, fmt.Errorf("video filters: %w", err)
	}
	cc := astiav.AllocCodecContext(codec)
	if cc == nil {
		return nil, errors.New("alloc video encoder")
	}
	c.add(cc.Free)
	cc.SetWidth(r.width)
	cc.SetHeight(r.height)
	cc.SetPixelFormat(astiav.PixelFormatYuv420P)
	cc.SetSampleAspectRatio(astiav.NewRational(1, 1))
	cc.SetTimeBase(filters.sinkTB)
	cc.SetFramerate(fps)
	cc.SetBitRate(int64(t.VideoKbps) * 1000)
	gopFrames := max(1, int(fps.Float64()*GOP.Seconds()+0.5))
	// Keyframes are forced by timestamp (see encoder.nextKey); the encoder's own limit
	// is a fallback for a variable frame rate, and scene cuts add none.
	cc.SetGopSize(2 * gopFrames)
	cc.SetThreadCount(0) // a codec context defaults to one thread: ~40 % slower
	if globalHeader {
		cc.SetFlags(cc.Flags().Add(astiav.CodecContextFlagGlobalHeader))
	}
	opts := astiav.NewDictionary()
	defer opts.Free()
	for k, v := range x264Options(t) {
		opts.Set(k, v, 0)
	}
	if err := cc.Open(codec, opts); err != nil {
		return nil, fmt.Errorf("open libx264: %w", err)
	}
	r.codecs = avcCodecString(cc.ExtraData())
	e, err := newEncoder(c, r, cc, filters)
	if err != nil {
		return nil, err
	}
	e.frameDuration = astiav.RescaleQ(1, astiav.NewRational(fps.Den(), fps.Num()), cc.TimeBase())
	return e, nil
}

// x264Options are the encoder settings besides size, rate and GOP; the CLI benchmarks
// pass the same ones to ffmpeg.
func x264Options(t Template) map[string]string {
	return map[string]string{
		"preset":       Preset,
		"sc_threshold": "0",
		"forced-idr":   "1",
		// VBV: peaks up to twice the target over one second keep BANDWIDTH honest.
		"maxrate": strconv.Itoa(2*t.VideoKbps) + "k",
		"bufsize": strconv.Itoa(2*t.VideoKbps) + "k",
	}
}

// aacSampleRates are the rates AAC encodes; another source rate is resampled to 48 kHz.
var aacSampleRates = map[int]bool{
	96000: true, 88200: true, 64000: true, 48000: true, 44100: true, 32000: true,
	24000: true, 22050: true, 16000: true, 12000: true, 11025: true, 8000: true,
}

func openAudioEncoder(c *closer, in *input, r *rendition, t Template, globalHeader bool) (*encoder, error) {
	codec := astiav.FindEncoder(astiav.CodecIDAac)
	if codec == nil {
		return nil, errors.New("aac encoder missing from libavcodec")
	}
	cc := astiav.AllocCodecContext(codec)
	if cc == nil {
		return nil, errors.New("alloc audio encoder")
	}
	c.add(cc.Free)
	rate := in.audio.cc.SampleRate()
	if !aacSampleRates[rate] {
		rate = 48000
	}
	layout := astiav.ChannelLayoutStereo
	if in.audio.cc.ChannelLayout().NbChannels() == 1 {
		layout = astiav.ChannelLayoutMono
	}
	cc.SetSampleRate(rate)
	cc.SetChannelLayout(layout)
	cc.SetSampleFormat(astiav.SampleFormatFltp)
	cc.SetTimeBase(astiav.NewRational(1, rate))
	cc.SetBitRate(int64(t.AudioKbps) * 1000)
	cc.SetThreadCount(0)
	if globalHeader {
		cc.SetFlags(cc.Flags().Add(astiav.CodecContextFlagGlobalHeader))
	}
	if err := cc.Open(codec, nil); err != nil {
		return nil, fmt.Errorf("open aac: %w", err)
	}
	// There is no av_buffersink_set_frame_size in go-astiav: asetnsamples cuts the
	// frames the AAC encoder needs (frame_size samples, 1024). The last one stays short
	// (the encoder takes a small last frame) so that the audio ends where the source's does.
	chain := fmt.Sprintf("aresample=%d,aformat=sample_fmts=fltp:channel_layouts=%s,asetnsamples=n=%d:p=0",
		rate, layout.String(), cc.FrameSize())
	if st := in.audio.stream; st.Duration() > 0 {
		// The decoder does not drop the encoder padding at the end of an MP4's AAC
		// (only the priming at the start): cut the audio where the container says it ends.
		end := toDuration(max(0, st.StartTime())+st.Duration(), st.TimeBase())
		chain = fmt.Sprintf("atrim=end=%.6f,", end.Seconds()) + chain
	}
	filters, err := newFilterGraph(c, in.audio, chain)
	if err != nil {
		return nil, fmt.Errorf("audio filters: %w", err)
	}
	return newEncoder(c, r, cc, filters)
}

func newEncoder(c *closer, r *rendition, cc *astiav.CodecContext, filters *filterGraph) (*encoder, error) {
	st := r.fc.NewStream(nil)
	if st == nil {
		return nil, errors.New("new output stream")
	}
	if err := cc.ToCodecParameters(st.CodecParameters()); err != nil {
		return nil, fmt.Errorf("output stream parameters: %w", err)
	}
	st.SetTimeBase(cc.TimeBase())
	e := &encoder{filters: filters, cc: cc, stream: st}
	if e.filtered = astiav.AllocFrame(); e.filtered == nil {
		return nil, errors.New("alloc frame")
	}
	c.add(e.filtered.Free)
	if e.pkt = astiav.AllocPacket(); e.pkt == nil {
		return nil, errors.New("alloc packet")
	}
	c.add(e.pkt.Free)
	return e, nil
}

// filter pushes a decoded frame (nil: end of stream) through the filter graph and
// encodes what comes out; at the end of stream it flushes the encoder too.
func (e *encoder) filter(r *rendition, f *astiav.Frame) error {
	if e == nil {
		return nil
	}
	if err := e.filters.src.BuffersrcAddFrame(f, astiav.NewBuffersrcFlags(astiav.BuffersrcFlagKeepRef)); err != nil {
		return fmt.Errorf("transcoder: %s: filter: %w", r.out.Template.Name, err)
	}
	for {
		if err := e.filters.sink.BuffersinkGetFrame(e.filtered, astiav.NewBuffersinkFlags()); err != nil {
			if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
				break
			}
			return fmt.Errorf("transcoder: %s: filter: %w", r.out.Template.Name, err)
		}
		e.prepare(e.filtered)
		err := e.encode(r, e.filtered)
		e.filtered.Unref()
		if err != nil {
			return err
		}
	}
	if f == nil {
		return e.encode(r, nil)
	}
	return nil
}

// prepare sets a filtered frame's timestamp in the encoder's time base and, for video,
// forces a keyframe at each GOP boundary.
func (e *encoder) prepare(f *astiav.Frame) {
	if e.cc.MediaType() == astiav.MediaTypeAudio {
		if f.Pts() != astiav.NoPtsValue {
			f.SetPts(astiav.RescaleQ(f.Pts(), e.filters.sinkTB, e.cc.TimeBase()))
		}
		return
	}
	f.SetPictureType(astiav.PictureTypeNone)
	if f.Pts() == astiav.NoPtsValue {
		return
	}
	t := toDuration(f.Pts(), e.filters.sinkTB)
	if !e.keyStarted {
		e.keyStarted, e.nextKey = true, t
	}
	if t >= e.nextKey {
		f.SetPictureType(astiav.PictureTypeI)
		for e.nextKey <= t {
			e.nextKey += GOP
		}
	}
}

// encode sends a frame (nil: flush) and writes the packets that come out.
func (e *encoder) encode(r *rendition, f *astiav.Frame) error {
	if err := e.cc.SendFrame(f); err != nil {
		return fmt.Errorf("transcoder: %s: encode: %w", r.out.Template.Name, err)
	}
	for {
		if err := e.cc.ReceivePacket(e.pkt); err != nil {
			if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
				return nil
			}
			return fmt.Errorf("transcoder: %s: encode: %w", r.out.Template.Name, err)
		}
		e.bytes += int64(e.pkt.Size())
		if e.pkt.Duration() <= 0 && e.frameDuration > 0 {
			// x264 leaves it 0; without it the MP4's last frame lasts 0 s.
			e.pkt.SetDuration(e.frameDuration)
		}
		e.pkt.SetStreamIndex(e.stream.Index())
		e.pkt.RescaleTs(e.cc.TimeBase(), e.stream.TimeBase())
		err := r.fc.WriteInterleavedFrame(e.pkt)
		e.pkt.Unref()
		if err != nil {
			return fmt.Errorf("transcoder: %s: write: %w", r.out.Template.Name, err)
		}
	}
}

// finish writes the trailer (the MP4 index moves to the front here) and closes the file.
func (r *rendition) finish() error {
	if err := r.fc.WriteTrailer(); err != nil {
		return fmt.Errorf("transcoder: %s: write trailer: %w", r.out.Template.Name, err)
	}
	if r.pb != nil {
		pb := r.pb
		r.pb = nil
		if err := pb.Close(); err != nil {
			return fmt.Errorf("transcoder: %s: close %q: %w", r.out.Template.Name, r.tmpPath, err)
		}
	}
	return nil
}

func (r *rendition) describe(in *input) Rendition {
	out := Rendition{
		Template:  r.out.Template.Name,
		Format:    r.out.Format,
		Path:      r.out.Path,
		Width:     r.width,
		Height:    r.height,
		FrameRate: r.fps.Float64(),
		Codecs:    r.codecs,
	}
	if secs := in.duration.Seconds(); secs > 0 {
		bytes := r.video.bytes
		out.VideoBitrate = int64(float64(bytes*8) / secs)
		if r.audio != nil {
			bytes += r.audio.bytes
			out.Codecs += ",mp4a.40.2" // AAC-LC
		}
		out.Bitrate = int64(float64(bytes*8) / secs)
	} else if r.audio != nil {
		out.Codecs += ",mp4a.40.2"
	}
	return out
}

// avcCodecString is the RFC 6381 name of an H.264 stream ("avc1.PPCCLL") from the
// encoder's extradata: an avcC record or Annex B parameter sets.
func avcCodecString(extradata []byte) string {
	if len(extradata) >= 4 && extradata[0] == 1 { // avcC
		return fmt.Sprintf("avc1.%02x%02x%02x", extradata[1], extradata[2], extradata[3])
	}
	for i := 0; i+3 < len(extradata); i++ {
		if extradata[i] == 0 && extradata[i+1] == 0 && extradata[i+2] == 1 && extradata[i+3]&0x1f == 7 && i+6 < len(extradata) {
			return fmt.Sprintf("avc1.%02x%02x%02x", extradata[i+4], extradata[i+5], extradata[i+6])
		}
	}
	return "avc1.640028" // High 4.0: what x264 picks up to 1080p30
}
