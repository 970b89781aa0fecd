package recorder

import "errors"

func newMP4Writer(path string, h headers) (formatWriter, error) {
	return nil, errors.New("recorder: mp4 not ready")
}

func recoverMP4(path string) (string, int64, float64, error) {
	return "", 0, 0, errors.New("recorder: mp4 not ready")
}
