package transcoder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/asticode/go-astiav"
)

// isBadInput reports libav errors that describe the input itself, as opposed to the
// machine (missing file, I/O, memory): those are worth a retry, these are not.
func isBadInput(err error) bool {
	for _, bad := range []astiav.Error{
		astiav.ErrInvaliddata, astiav.ErrEof, astiav.ErrDecoderNotFound, astiav.ErrDemuxerNotFound,
		astiav.ErrPatchwelcome, astiav.ErrStreamNotFound,
	} {
		if errors.Is(err, bad) {
			return true
		}
	}
	return false
}

// inputError wraps a demuxing or decoding error: ctx's error when the call was
// interrupted by a cancel, ErrBadInput when the input is at fault.
func inputError(ctx context.Context, what string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("transcoder: %s: %w", what, ctxErr)
	}
	if isBadInput(err) {
		return fmt.Errorf("%w: %s: %w", ErrBadInput, what, err)
	}
	return fmt.Errorf("transcoder: %s: %w", what, err)
}

var logOnce sync.Once

// routeLogs sends libav's log lines (errors only: the info lines are per stream and
// per encoder) to slog at debug level; the errors themselves come back as Go errors.
func routeLogs() {
	logOnce.Do(func() {
		astiav.SetLogLevel(astiav.LogLevelError)
		astiav.SetLogCallback(func(c astiav.Classer, l astiav.LogLevel, _, msg string) {
			class := ""
			if c != nil {
				if cl := c.Class(); cl != nil {
					class = cl.Name()
				}
			}
			slog.Debug("libav", "component", "transcoder", "class", class, "level", int(l), "msg", trimNewline(msg))
		})
	})
}

func trimNewline(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}

// closer frees libav objects in the reverse order of their allocation: every Alloc is
// followed at once by the add of its Free (the go-astiav examples' habit).
type closer struct{ fns []func() }

func (c *closer) add(fn func()) { c.fns = append(c.fns, fn) }

func (c *closer) close() {
	for i := len(c.fns) - 1; i >= 0; i-- {
		c.fns[i]()
	}
	c.fns = nil
}

// input is an opened source with its first video and first audio stream decoders.
type input struct {
	fc       *astiav.FormatContext
	video    *decoder // never nil
	audio    *decoder // nil for a source without audio
	duration time.Duration
	fps      astiav.Rational
	// displayW, displayH is the picture as shown (the sample aspect ratio applied).
	displayW, displayH int
}

type decoder struct {
	stream *astiav.Stream
	cc     *astiav.CodecContext
	frame  *astiav.Frame
}

// openInput opens path and its decoders; everything it allocates is freed by c.
// ctx's cancel interrupts blocking reads inside libav.
func openInput(ctx context.Context, c *closer, path string) (*input, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("transcoder: open %q: %w", path, err)
	}
	fc := astiav.AllocFormatContext()
	if fc == nil {
		return nil, errors.New("transcoder: alloc input format context")
	}
	c.add(fc.Free)
	interrupter := fc.SetInterruptCallback()
	stop := context.AfterFunc(ctx, interrupter.Interrupt)
	c.add(func() { stop() })
	if err := fc.OpenInput(path, nil, nil); err != nil {
		return nil, inputError(ctx, fmt.Sprintf("open %q", path), err)
	}
	c.add(fc.CloseInput)
	if err := fc.FindStreamInfo(nil); err != nil {
		return nil, inputError(ctx, fmt.Sprintf("read stream info of %q", path), err)
	}
	if err := ctx.Err(); err != nil {
		// The interrupt can cut probing short without an error, leaving streams
		// without their parameters: that is the cancel, not a bad input.
		return nil, fmt.Errorf("transcoder: read stream info of %q: %w", path, err)
	}
	in := &input{fc: fc}
	if d := fc.Duration(); d > 0 {
		in.duration = time.Duration(d) * time.Microsecond // AV_TIME_BASE is 1 MHz
	}
	for _, st := range fc.Streams() {
		switch st.CodecParameters().MediaType() {
		case astiav.MediaTypeVideo:
			if in.video != nil || st.CodecParameters().Width() == 0 {
				continue
			}
			d, err := openDecoder(c, st)
			if err != nil {
				return nil, fmt.Errorf("transcoder: %q: %w", path, err)
			}
			d.cc.SetFramerate(fc.GuessFrameRate(st, nil))
			in.video = d
		case astiav.MediaTypeAudio:
			if in.audio != nil {
				continue
			}
			d, err := openDecoder(c, st)
			if err != nil {
				return nil, fmt.Errorf("transcoder: %q: %w", path, err)
			}
			in.audio = d
		}
	}
	if in.video == nil {
		return nil, fmt.Errorf("%w: %q has no video stream", ErrBadInput, path)
	}
	in.fps = fc.GuessFrameRate(in.video.stream, nil)
	if in.fps.Num() <= 0 || in.fps.Den() <= 0 || in.fps.Float64() > 240 {
		in.fps = astiav.NewRational(30, 1) // unknown: only used for the encoder's rate control
	}
	w, h := in.video.cc.Width(), in.video.cc.Height()
	if w <= 0 || h <= 0 || in.video.cc.PixelFormat() == astiav.PixelFormatNone {
		// The demuxer could not read the stream's parameters (an SPS it cannot parse):
		// no filter graph can be built for it, now or on a retry.
		return nil, fmt.Errorf("%w: %q: video stream without a size or pixel format (%dx%d %s)",
			ErrBadInput, path, w, h, in.video.cc.PixelFormat())
	}
	if sar := in.video.cc.SampleAspectRatio(); sar.Num() > 0 && sar.Den() > 0 && sar.Num() != sar.Den() {
		w = w * sar.Num() / sar.Den()
	}
	in.displayW, in.displayH = w, h
	return in, nil
}

func openDecoder(c *closer, st *astiav.Stream) (*decoder, error) {
	cp := st.CodecParameters()
	codec := astiav.FindDecoder(cp.CodecID())
	if codec == nil {
		return nil, fmt.Errorf("%w: no decoder for %s stream %d (%s)", ErrBadInput, cp.MediaType(), st.Index(), cp.CodecID())
	}
	cc := astiav.AllocCodecContext(codec)
	if cc == nil {
		return nil, errors.New("alloc decoder context")
	}
	c.add(cc.Free)
	if err := cp.ToCodecContext(cc); err != nil {
		return nil, fmt.Errorf("decoder parameters of stream %d: %w", st.Index(), err)
	}
	cc.SetThreadCount(0) // a codec context defaults to one thread
	if err := cc.Open(codec, nil); err != nil {
		return nil, fmt.Errorf("%w: open %s decoder of stream %d: %w", ErrBadInput, codec.Name(), st.Index(), err)
	}
	cc.SetTimeBase(st.TimeBase())
	frame := astiav.AllocFrame()
	c.add(frame.Free)
	return &decoder{stream: st, cc: cc, frame: frame}, nil
}

// decode sends pkt (nil: flush) and hands every decoded frame to fn, which must not
// keep it.
func (d *decoder) decode(ctx context.Context, pkt *astiav.Packet, fn func(*astiav.Frame) error) error {
	if err := d.cc.SendPacket(pkt); err != nil && !errors.Is(err, astiav.ErrEof) {
		return inputError(ctx, fmt.Sprintf("decode stream %d", d.stream.Index()), err)
	}
	for {
		if err := d.cc.ReceiveFrame(d.frame); err != nil {
			if errors.Is(err, astiav.ErrEagain) || errors.Is(err, astiav.ErrEof) {
				return nil
			}
			return inputError(ctx, fmt.Sprintf("decode stream %d", d.stream.Index()), err)
		}
		if d.frame.Pts() == astiav.NoPtsValue {
			d.frame.SetPts(d.frame.PktDts())
		}
		err := fn(d.frame)
		d.frame.Unref()
		if err != nil {
			return err
		}
	}
}

// filterGraph is one buffer source → filters → buffer sink chain.
type filterGraph struct {
	graph  *astiav.FilterGraph
	src    *astiav.FilterContext
	sink   *astiav.FilterContext
	sinkTB astiav.Rational
}

// newFilterGraph builds "buffer → chain → buffersink" for the decoder's frames (video
// or audio, after d's media type).
func newFilterGraph(c *closer, d *decoder, chain string) (*filterGraph, error) {
	g := astiav.AllocFilterGraph()
	if g == nil {
		return nil, errors.New("alloc filter graph")
	}
	c.add(g.Free)
	g.SetThreadCount(0)
	outputs := astiav.AllocFilterInOut()
	if outputs == nil {
		return nil, errors.New("alloc filter outputs")
	}
	c.add(outputs.Free)
	inputs := astiav.AllocFilterInOut()
	if inputs == nil {
		return nil, errors.New("alloc filter inputs")
	}
	c.add(inputs.Free)

	var args astiav.FilterArgs
	var srcName, sinkName string
	cc := d.cc
	if cc.MediaType() == astiav.MediaTypeAudio {
		srcName, sinkName = "abuffer", "abuffersink"
		args = astiav.FilterArgs{
			"channel_layout": cc.ChannelLayout().String(),
			"sample_fmt":     cc.SampleFormat().Name(),
			"sample_rate":    strconv.Itoa(cc.SampleRate()),
			"time_base":      d.stream.TimeBase().String(),
		}
	} else {
		srcName, sinkName = "buffer", "buffersink"
		sar := cc.SampleAspectRatio()
		if sar.Num() <= 0 || sar.Den() <= 0 {
			sar = astiav.NewRational(1, 1)
		}
		args = astiav.FilterArgs{
			"pix_fmt":      strconv.Itoa(int(cc.PixelFormat())),
			"pixel_aspect": sar.String(),
			"time_base":    d.stream.TimeBase().String(),
			"video_size":   strconv.Itoa(cc.Width()) + "x" + strconv.Itoa(cc.Height()),
		}
	}
	srcFilter, sinkFilter := astiav.FindFilterByName(srcName), astiav.FindFilterByName(sinkName)
	if srcFilter == nil || sinkFilter == nil {
		return nil, fmt.Errorf("filters %s/%s missing from libavfilter", srcName, sinkName)
	}
	// The graph frees its filters, but go-astiav forgets the contexts it wrapped only in
	// FilterContext.Free (avfilter_free, which also takes them out of the graph).
	src, err := g.NewFilterContext(srcFilter, "in", args)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", srcName, err)
	}
	c.add(src.Free)
	sink, err := g.NewFilterContext(sinkFilter, "out", nil)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", sinkName, err)
	}
	c.add(sink.Free)
	outputs.SetName("in")
	outputs.SetFilterContext(src)
	outputs.SetPadIdx(0)
	outputs.SetNext(nil)
	inputs.SetName("out")
	inputs.SetFilterContext(sink)
	inputs.SetPadIdx(0)
	inputs.SetNext(nil)
	if err := g.Parse(chain, inputs, outputs); err != nil {
		return nil, fmt.Errorf("parse filter %q: %w", chain, err)
	}
	if err := g.Configure(); err != nil {
		return nil, fmt.Errorf("configure filter %q: %w", chain, err)
	}
	return &filterGraph{graph: g, src: src, sink: sink, sinkTB: sink.Inputs()[0].TimeBase()}, nil
}

// toDuration converts a timestamp in tb to a time.Duration.
func toDuration(ts int64, tb astiav.Rational) time.Duration {
	return time.Duration(astiav.RescaleQ(ts, tb, astiav.NewRational(1, int(time.Second))))
}
