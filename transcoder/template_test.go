package transcoder

import "testing"

func TestAVCCodecString(t *testing.T) {
	annexB := []byte{0, 0, 0, 1, 0x67, 0x64, 0x00, 0x1f, 0xac, 0, 0, 0, 1, 0x68, 0xeb}
	if got := avcCodecString(annexB); got != "avc1.64001f" {
		t.Errorf("Annex B: %q", got)
	}
	avcC := []byte{1, 0x4d, 0x40, 0x1e, 0xff, 0xe1}
	if got := avcCodecString(avcC); got != "avc1.4d401e" {
		t.Errorf("avcC: %q", got)
	}
}
