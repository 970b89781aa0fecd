// Package stream is the hub of live streams: one publication per app/stream id, its
// subscribers (viewers and recorders), each with a bounded queue, the GOP cache that
// starts a new subscriber on a keyframe at once, the reasons a push ends, and the
// counters stats read.
//
// The hub hands every subscriber the same immutable packet (serialize once, write
// many); a slow subscriber skips to the next keyframe and is dropped if it stays
// behind, so it never slows the publisher or the others. Observers (the recorder, the
// callbacks) are told when a push starts and ends.
package stream
