package media

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/Eyevinn/mp4ff/avc"
)

// AVCConfig is what livetape needs from an AVCDecoderConfigurationRecord
// (ISO/IEC 14496-15 5.3.3.1): the parameter sets and the picture size.
type AVCConfig struct {
	Record        []byte // the record as received, for muxers that embed it (avcC)
	SPS, PPS      [][]byte
	Profile       uint8
	Level         uint8
	Width, Height int
}

// ParseAVCConfig decodes an AVCDecoderConfigurationRecord and its first SPS.
func ParseAVCConfig(record []byte) (*AVCConfig, error) {
	rec, err := avc.DecodeAVCDecConfRec(record)
	if err != nil {
		return nil, fmt.Errorf("avcC: %w", err)
	}
	if len(rec.SPSnalus) == 0 || len(rec.PPSnalus) == 0 {
		return nil, errors.New("avcC: no SPS or no PPS")
	}
	sps, err := avc.ParseSPSNALUnit(rec.SPSnalus[0], false)
	if err != nil {
		return nil, fmt.Errorf("avcC: SPS: %w", err)
	}
	return &AVCConfig{
		Record:  append([]byte(nil), record...),
		SPS:     rec.SPSnalus,
		PPS:     rec.PPSnalus,
		Profile: rec.AVCProfileIndication,
		Level:   rec.AVCLevelIndication,
		Width:   int(sps.Width),
		Height:  int(sps.Height),
	}, nil
}

// Codec is the RFC 6381 codecs string ("avc1.64001f").
func (c *AVCConfig) Codec() string {
	var compat byte
	if len(c.Record) > 2 {
		compat = c.Record[2]
	}
	return fmt.Sprintf("avc1.%02x%02x%02x", c.Profile, compat, c.Level)
}

// Equal reports whether two configurations carry the same parameter sets.
func (c *AVCConfig) Equal(o *AVCConfig) bool {
	return c != nil && o != nil && bytes.Equal(c.Record, o.Record)
}

// aacSampleRates is the samplingFrequencyIndex table (ISO/IEC 14496-3 1.6.3.4).
var aacSampleRates = [...]int{96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}

// AACConfig is an AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1), reduced to what ADTS
// headers and MP4 sample entries need.
type AACConfig struct {
	Record      []byte // as received
	ObjectType  uint8  // 2 = AAC-LC, 5 = SBR, 29 = PS
	RateIndex   uint8  // samplingFrequencyIndex
	SampleRate  int
	Channels    uint8 // channelConfiguration
	FrameLength int   // samples per frame: 1024 (960 when frameLengthFlag is set)
}

// ParseAACConfig decodes the first fields of an AudioSpecificConfig.
func ParseAACConfig(record []byte) (*AACConfig, error) {
	if len(record) < 2 {
		return nil, errors.New("AudioSpecificConfig: shorter than 2 bytes")
	}
	c := &AACConfig{Record: append([]byte(nil), record...), FrameLength: 1024}
	c.ObjectType = record[0] >> 3
	if c.ObjectType == 0 || c.ObjectType == 31 {
		return nil, fmt.Errorf("AudioSpecificConfig: unsupported audioObjectType %d", c.ObjectType)
	}
	c.RateIndex = (record[0]&0x07)<<1 | record[1]>>7
	if int(c.RateIndex) >= len(aacSampleRates) {
		// Index 15 (explicit 24-bit frequency) cannot be expressed in ADTS either.
		return nil, fmt.Errorf("AudioSpecificConfig: unsupported samplingFrequencyIndex %d", c.RateIndex)
	}
	c.SampleRate = aacSampleRates[c.RateIndex]
	c.Channels = (record[1] >> 3) & 0x0f
	if record[1]&0x04 != 0 {
		c.FrameLength = 960
	}
	return c, nil
}

// Codec is the RFC 6381 codecs string ("mp4a.40.2").
func (c *AACConfig) Codec() string { return fmt.Sprintf("mp4a.40.%d", c.ObjectType) }

// Equal reports whether two configurations are the same.
func (c *AACConfig) Equal(o *AACConfig) bool {
	return c != nil && o != nil && bytes.Equal(c.Record, o.Record)
}

// ADTSHeader returns the 7-byte ADTS header (ISO/IEC 13818-7 6.2) for a raw AAC frame
// of frameLen bytes.
func (c *AACConfig) ADTSHeader(frameLen int) [7]byte {
	full := frameLen + 7
	profile := c.ObjectType - 1
	if profile > 3 {
		profile = 1 // SBR/PS streams are signalled as AAC-LC in ADTS (implicit signalling)
	}
	ch := c.Channels
	return [7]byte{
		0xFF,
		0xF1, // MPEG-4, layer 0, no CRC
		profile<<6 | c.RateIndex<<2 | ch>>2,
		(ch&3)<<6 | byte(full>>11),
		byte(full >> 3),
		byte(full&7)<<5 | 0x1F,
		0xFC,
	}
}
