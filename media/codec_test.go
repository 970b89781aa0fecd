package media

import "testing"

// A 1280x720 High@3.1 record as x264 emits it.
var avcRecord720p = []byte{
	0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x1a, 0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50,
	0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00, 0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83,
	0x19, 0x60, 0x01, 0x00, 0x06, 0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0, 0xfd, 0xf8, 0xf8, 0x00,
}

func TestParseAVCConfig(t *testing.T) {
	c, err := ParseAVCConfig(avcRecord720p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Width != 1280 || c.Height != 720 {
		t.Errorf("size = %dx%d, want 1280x720", c.Width, c.Height)
	}
	if got := c.Codec(); got != "avc1.64001f" {
		t.Errorf("codec = %s", got)
	}
	if _, err := ParseAVCConfig(avcRecord720p[:5]); err == nil {
		t.Error("truncated record accepted")
	}
}

func TestParseAACConfig(t *testing.T) {
	tests := []struct {
		name     string
		in       []byte
		rate     int
		channels uint8
		wantErr  bool
	}{
		{"lc 44100 stereo", []byte{0x12, 0x10}, 44100, 2, false},
		{"lc 48000 mono", []byte{0x11, 0x88}, 48000, 1, false},
		{"short", []byte{0x12}, 0, 0, true},
		{"object type 0", []byte{0x02, 0x10}, 0, 0, true},
		{"rate index 15", []byte{0x17, 0x90}, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseAACConfig(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && (c.SampleRate != tt.rate || c.Channels != tt.channels) {
				t.Errorf("got %d Hz %d ch, want %d Hz %d ch", c.SampleRate, c.Channels, tt.rate, tt.channels)
			}
		})
	}
}

func TestADTSHeader(t *testing.T) {
	c, _ := ParseAACConfig([]byte{0x12, 0x10})
	h := c.ADTSHeader(100)
	if h[0] != 0xFF || h[1]&0xF0 != 0xF0 {
		t.Fatalf("no syncword: % x", h)
	}
	n := int(h[3]&3)<<11 | int(h[4])<<3 | int(h[5]>>5)
	if n != 107 {
		t.Errorf("frame length = %d, want 107", n)
	}
}

func FuzzParseAVCConfig(f *testing.F) {
	f.Add(avcRecord720p)
	f.Add([]byte{1, 0x64, 0, 0x1f, 0xff, 0xe1, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseAVCConfig(b)
		if err == nil && (len(c.SPS) == 0 || len(c.PPS) == 0) {
			t.Fatal("accepted a record without parameter sets")
		}
	})
}

func FuzzParseAACConfig(f *testing.F) {
	f.Add([]byte{0x12, 0x10})
	f.Add([]byte{0x2b, 0x92, 0x08, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseAACConfig(b)
		if err == nil && (c.SampleRate == 0 || c.ObjectType == 0) {
			t.Fatalf("accepted %x with rate %d type %d", b, c.SampleRate, c.ObjectType)
		}
	})
}

func TestNewPacketFlags(t *testing.T) {
	key, _ := NewPacket(KindVideo, 40, append([]byte{0x17, 1, 0, 0, 0x50}, 0, 0, 0, 1, 0x65))
	if !key.Keyframe || key.SequenceHeader || key.CompositionTime != 80 {
		t.Errorf("keyframe packet: %+v", key)
	}
	seq, _ := NewPacket(KindVideo, 0, append([]byte{0x17, 0, 0, 0, 0}, avcRecord720p...))
	if !seq.SequenceHeader {
		t.Error("sequence header not flagged")
	}
	neg, _ := NewPacket(KindVideo, 0, []byte{0x27, 1, 0xff, 0xff, 0xd8})
	if neg.Keyframe || neg.CompositionTime != -40 {
		t.Errorf("inter frame: keyframe=%v cts=%d", neg.Keyframe, neg.CompositionTime)
	}
	asc, _ := NewPacket(KindAudio, 0, []byte{0xaf, 0, 0x12, 0x10})
	if !asc.SequenceHeader || string(asc.Payload()) != "\x12\x10" {
		t.Errorf("AAC sequence header: %+v", asc)
	}
	big := key.WithTimestamp(0x01020304)
	if big.Tag[4] != 0x02 || big.Tag[7] != 0x01 || key.Timestamp != 40 {
		t.Errorf("restamp: % x", big.Tag[:11])
	}
	if got := len(key.Tag) - TagHeaderSize - PrevSizeLen; got != len(key.Body()) {
		t.Errorf("body length %d", got)
	}
}
