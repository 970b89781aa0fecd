package sign

import (
	"errors"
	"testing"
	"time"
)

func TestSecretMatchesTencentExample(t *testing.T) {
	// The seed's example: KEY + stream id + txTime, MD5, lowercase hex.
	got := Secret("e12c46f2612d5106e2034781ab261ca3", "8888_test", "5867D600")
	if got != "eec06f4b673db4ee583466054d37d538" { // md5sum of the concatenation
		t.Fatalf("secret %q", got)
	}
	if TxTime(time.Unix(0x5867D600, 0)) != "5867D600" {
		t.Errorf("TxTime = %s", TxTime(time.Unix(0x5867D600, 0)))
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	q := Query("key", "s1", now.Add(time.Hour))
	sec, tt := q.Get("txSecret"), q.Get("txTime")
	tests := []struct {
		name           string
		keys           []string
		stream, s, txt string
		want           error
	}{
		{"valid", []string{"key"}, "s1", sec, tt, nil},
		{"backup key", []string{"old", "key"}, "s1", sec, tt, nil},
		{"upper-case secret", []string{"key"}, "s1", toUpper(sec), tt, nil},
		{"wrong key", []string{"other"}, "s1", sec, tt, ErrBadSignature},
		{"other stream", []string{"key"}, "s2", sec, tt, ErrBadSignature},
		{"no keys", nil, "s1", sec, tt, ErrBadSignature},
		{"missing", []string{"key"}, "s1", "", tt, ErrMissing},
		{"bad time", []string{"key"}, "s1", sec, "zz", ErrBadTxTime},
		{"expired", []string{"key"}, "s1", Secret("key", "s1", TxTime(now.Add(-time.Second))), TxTime(now.Add(-time.Second)), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify(tt.keys, tt.stream, tt.s, tt.txt, now)
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 32
		}
	}
	return string(b)
}
