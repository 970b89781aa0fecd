package transcoder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/asticode/go-astiav"
)

// WriteThumbnail writes a JPEG of the source's frame at opt.At (the first frame at or
// after it, the last frame for an offset past the end) to w, in the source's aspect ratio.
func WriteThumbnail(ctx context.Context, inputPath string, w io.Writer, opt ThumbnailOptions) (Thumbnail, error) {
	routeLogs()
	var c closer
	defer c.close()
	in, err := openInput(ctx, &c, inputPath)
	if err != nil {
		return Thumbnail{}, err
	}
	at := opt.At
	if at <= 0 {
		at = time.Duration(float64(in.duration) * DefaultThumbnailAt)
	}
	st := in.video.stream
	start := max(0, st.StartTime())
	target := start + astiav.RescaleQ(int64(at), astiav.NewRational(1, int(time.Second)), st.TimeBase())
	if at > 0 {
		// Back to the keyframe before the target, then decode forward to it.
		if err := in.fc.SeekFrame(st.Index(), target, astiav.NewSeekFlags(astiav.SeekFlagBackward)); err != nil {
			return Thumbnail{}, inputError(ctx, "seek", err)
		}
	}

	t := Template{Name: "thumbnail", ShortSide: opt.ShortSide}
	if t.ShortSide <= 0 {
		t.ShortSide = min(in.displayW, in.displayH)
	}
	width, height := t.Size(in.displayW, in.displayH)
	filters, err := newFilterGraph(&c, in.video, fmt.Sprintf("scale=%d:%d,setsar=1,format=yuvj420p", width, height))
	if err != nil {
		return Thumbnail{}, fmt.Errorf("transcoder: thumbnail filters: %w", err)
	}
	picked := astiav.AllocFrame()
	if picked == nil {
		return Thumbnail{}, errors.New("transcoder: alloc frame")
	}
	c.add(picked.Free)
	pkt := astiav.AllocPacket()
	if pkt == nil {
		return Thumbnail{}, errors.New("transcoder: alloc packet")
	}
	c.add(pkt.Free)

	// Keep the latest decoded frame until one reaches the target.
	found := false
	keep := func(f *astiav.Frame) error {
		if found {
			return nil
		}
		picked.Unref()
		if err := picked.Ref(f); err != nil {
			return fmt.Errorf("transcoder: ref frame: %w", err)
		}
		found = f.Pts() != astiav.NoPtsValue && f.Pts() >= target
		return nil
	}
	for !found {
		if err := ctx.Err(); err != nil {
			return Thumbnail{}, fmt.Errorf("transcoder: %w", err)
		}
		if err := in.fc.ReadFrame(pkt); err != nil {
			if errors.Is(err, astiav.ErrEof) {
				break
			}
			return Thumbnail{}, inputError(ctx, "read", err)
		}
		var err error
		if pkt.StreamIndex() == st.Index() {
			err = in.video.decode(ctx, pkt, keep)
		}
		pkt.Unref()
		if err != nil {
			return Thumbnail{}, err
		}
	}
	if !found {
		if err := in.video.decode(ctx, nil, keep); err != nil {
			return Thumbnail{}, err
		}
	}
	if picked.Width() == 0 {
		return Thumbnail{}, fmt.Errorf("%w: %q: no video frame decoded", ErrBadInput, inputPath)
	}
	thumb := Thumbnail{Width: width, Height: height}
	if picked.Pts() != astiav.NoPtsValue {
		thumb.At = toDuration(picked.Pts()-start, st.TimeBase())
	}
	if err := encodeJPEG(&c, filters, picked, w); err != nil {
		return Thumbnail{}, err
	}
	return thumb, nil
}

// encodeJPEG filters one frame and writes it as a JPEG.
func encodeJPEG(c *closer, filters *filterGraph, f *astiav.Frame, w io.Writer) error {
	if err := filters.src.BuffersrcAddFrame(f, astiav.NewBuffersrcFlags(astiav.BuffersrcFlagKeepRef)); err != nil {
		return fmt.Errorf("transcoder: thumbnail filter: %w", err)
	}
	if err := filters.src.BuffersrcAddFrame(nil, astiav.NewBuffersrcFlags()); err != nil {
		return fmt.Errorf("transcoder: thumbnail filter: %w", err)
	}
	scaled := astiav.AllocFrame()
	if scaled == nil {
		return errors.New("transcoder: alloc frame")
	}
	c.add(scaled.Free)
	if err := filters.sink.BuffersinkGetFrame(scaled, astiav.NewBuffersinkFlags()); err != nil {
		return fmt.Errorf("transcoder: thumbnail filter: %w", err)
	}
	codec := astiav.FindEncoder(astiav.CodecIDMjpeg)
	if codec == nil {
		return errors.New("transcoder: mjpeg encoder missing from libavcodec")
	}
	cc := astiav.AllocCodecContext(codec)
	if cc == nil {
		return errors.New("transcoder: alloc jpeg encoder")
	}
	c.add(cc.Free)
	cc.SetWidth(scaled.Width())
	cc.SetHeight(scaled.Height())
	cc.SetPixelFormat(astiav.PixelFormatYuvj420P)
	cc.SetTimeBase(astiav.NewRational(1, 25))
	// The rate control of a single frame lands on qmax: 3 is a good-looking, compact JPEG.
	cc.SetQmin(2)
	opts := astiav.NewDictionary()
	defer opts.Free()
	opts.Set("qmax", "3", 0)
	if err := cc.Open(codec, opts); err != nil {
		return fmt.Errorf("transcoder: open jpeg encoder: %w", err)
	}
	scaled.SetPts(0)
	scaled.SetPictureType(astiav.PictureTypeNone)
	if err := cc.SendFrame(scaled); err != nil {
		return fmt.Errorf("transcoder: encode jpeg: %w", err)
	}
	if err := cc.SendFrame(nil); err != nil {
		return fmt.Errorf("transcoder: encode jpeg: %w", err)
	}
	pkt := astiav.AllocPacket()
	if pkt == nil {
		return errors.New("transcoder: alloc packet")
	}
	c.add(pkt.Free)
	if err := cc.ReceivePacket(pkt); err != nil {
		return fmt.Errorf("transcoder: encode jpeg: %w", err)
	}
	defer pkt.Unref()
	if _, err := w.Write(pkt.Data()); err != nil {
		return fmt.Errorf("transcoder: write jpeg: %w", err)
	}
	return nil
}
