// Package fmp4 records H.264/AAC streams as MP4 crash-safely, in three steps.
//
// While a stream is live, a [Writer] appends a fragmented MP4 (ISO/IEC 14496-12 8.8,
// movie fragments): an init segment (ftyp + moov without samples) and then one
// moof+mdat pair per flush. Every flushed fragment is self-describing, so a crash loses
// only what was not flushed yet (the recorder flushes at least once a second and fsyncs).
//
// When the recording ends, [Finalize] rewrites the fragmented file as a progressive MP4
// with the whole index (moov) before the media (mdat), which players and HTTP range
// requests handle best ("fast start"). It streams: the sample tables it keeps grow with
// the number of samples, never with the number of bytes, and the media is copied through
// one fixed buffer.
//
// After a crash, [Recover] cuts a fragmented file back to its last complete fragment so
// that [Finalize] can turn what survived into a playable file.
//
// Recording never transcodes: samples are copied byte for byte from the packets.
package fmp4
