// Package sign makes and checks Tencent-style hotlink signatures for push and play URLs:
//
//	txTime   = expiry as a UNIX timestamp in hexadecimal (e.g. 5867D600)
//	txSecret = lowercase hex MD5(KEY + STREAM_ID + txTime)
//
// A Go backend imports it to sign URLs for its broadcasters and viewers; livetape uses
// the same code to check them.
package sign

import (
	"crypto/md5"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors returned by Verify; callers show them to the client.
var (
	ErrMissing      = errors.New("missing txSecret or txTime")
	ErrBadTxTime    = errors.New("txTime is not a hexadecimal UNIX time")
	ErrExpired      = errors.New("txTime has expired")
	ErrBadSignature = errors.New("txSecret does not match")
)

// TxTime formats an expiry as txTime: upper-case hexadecimal UNIX seconds.
func TxTime(expiry time.Time) string {
	return strings.ToUpper(strconv.FormatInt(expiry.Unix(), 16))
}

// Secret returns txSecret for a stream id and txTime, exactly as given (txTime's case
// is part of the signed text).
func Secret(key, streamID, txTime string) string {
	sum := md5.Sum([]byte(key + streamID + txTime))
	return hex.EncodeToString(sum[:])
}

// Query returns the txSecret and txTime parameters that sign streamID until expiry.
func Query(key, streamID string, expiry time.Time) url.Values {
	t := TxTime(expiry)
	return url.Values{"txSecret": {Secret(key, streamID, t)}, "txTime": {t}}
}

// Verify checks txSecret and txTime for streamID against any of keys (empty keys are
// skipped) at time now. The comparison runs in constant time.
func Verify(keys []string, streamID, txSecret, txTime string, now time.Time) error {
	if txSecret == "" || txTime == "" {
		return ErrMissing
	}
	expiry, err := strconv.ParseInt(txTime, 16, 64)
	if err != nil || expiry < 0 {
		return ErrBadTxTime
	}
	if now.Unix() > expiry {
		return fmt.Errorf("%w (at %s)", ErrExpired, time.Unix(expiry, 0).UTC().Format(time.RFC3339))
	}
	got := []byte(strings.ToLower(txSecret))
	ok := 0
	for _, k := range keys {
		if k == "" {
			continue
		}
		ok |= subtle.ConstantTimeCompare(got, []byte(Secret(k, streamID, txTime)))
	}
	if ok != 1 {
		return ErrBadSignature
	}
	return nil
}
