package mediatest

import (
	"errors"
	"io"
	"os"
	"testing"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
)

// ReadFLV returns every packet of an FLV file (a fixture, a recording).
func ReadFLV(t testing.TB, path string) []*media.Packet {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := flv.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var pkts []*media.Packet
	for {
		p, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			return pkts
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		pkts = append(pkts, p)
	}
}
