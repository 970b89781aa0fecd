// Package catalog keeps the entries of stored recordings: what was recorded, where its
// objects are, and the key template that named them.
//
// # Truth and index
//
// The truth is the JSON beside each recording in the store ({key stem}.json, see
// EntryKey): Put writes it after the media, Delete removes it after the media. Nothing
// else is needed to know what the store holds, so a bucket copied elsewhere keeps its
// catalog.
//
// Finding a recording by file id, or the recordings of a stream in a time range, from
// the store alone means listing the bucket and reading every JSON. An index in Redis
// answers both without touching the store: List needs two round trips, Get one. The
// index is derived data: Rebuild makes it again from the store (`livetape catalog
// rebuild`), and EnsureIndex does so when it is missing — a new Redis, a Redis restarted
// without persistence, the embedded miniredis of `livetape serve` at every start. While
// it is not built (no marker), Get and List read the store instead, so answers stay
// right, only as slow as before the index (a List reads every entry): callers that
// would rather refuse meanwhile check Built.
//
// # Keys in Redis
//
// Every key starts with a prefix (DefaultPrefix "livetape:catalog:"; one per deployment
// sharing a Redis). After it:
//
//	built             string      present once a rebuild completed (JSON: built_at, entries, took_ms).
//	                              A Redis that loses its data loses it too: that is how
//	                              EnsureIndex sees that the index must be rebuilt.
//	lock              string      token of the running rebuild; a 1 min TTL it extends every 20 s.
//	                              The marker is set only if the lock is still the rebuild's, so
//	                              a Redis restarted during a rebuild is not marked built.
//	entries           hash        file id -> entry JSON (credentials already stripped), so a
//	                              page of List is one HMGET and needs no store read.
//	facets            hash        file id -> "app/stream_id/format/type" (each part
//	                              path-escaped): the sets the entry is in, to leave them when
//	                              it changes or is deleted.
//	ver               hash        file id -> stored_at in UNIX ns (19 digits): a rebuild does not
//	                              replace an entry Put meanwhile with the older JSON it read.
//	deleted           sorted set  file id -> UNIX ms of its Delete: a rebuild that read the JSON
//	                              before the delete does not bring it back. Trimmed after 24 h
//	                              and by each completed rebuild.
//	z:A/S/F/T         sorted set  file ids by start time (UNIX µs) of the entries with app A,
//	                              stream id S, format F, type T, where any part may be empty
//	                              for "any": 16 sets per entry ("z:///" holds every entry,
//	                              "z:live/cam1//" a stream, "z:live/cam1/mp4/" its MP4s). A
//	                              List is ZCOUNT + ZRANGEBYSCORE LIMIT on exactly one set.
//	b:entries         hash        broadcast id -> broadcast entry JSON (see Broadcast).
//	b:rev             hash        broadcast id -> rev of the indexed entry: a write with a
//	                              lower rev than the index has does not replace it.
//	b:z:A/S           sorted set  broadcast ids by start time (UNIX µs) of app A, stream id S,
//	                              either part empty for "any" (4 sets per broadcast).
//	b:live            sorted set  broadcast ids whose indexed entry is live, by start time.
//
// A broadcast entry is stored at broadcasts/{app}/{stream_id}/{broadcast_id}.broadcast.json
// (BroadcastKey); scans of recording entries skip that suffix, and Rebuild indexes those
// entries too before it marks the index built.
//
// Put and Delete update an entry with one Lua script each, atomically (the scripts
// name keys they compute, so the index needs one Redis, not a Redis Cluster); Rebuild writes
// batches of 1 000 entries in one MULTI with one ZADD per set. Only commands that both
// redis-server and miniredis v2.33.0 have are used (miniredis runs Lua with gopher-lua
// and sorts a whole sorted set per range query, which is why entries are spread over
// per-stream sets rather than filtered from one).
//
// # Credentials
//
// stream_param is the query of the push URL. Its txSecret and txTime are a working
// push credential until txTime, so PublicStreamParam strips them from every entry
// written and every entry read, whether from the store or from the index.
package catalog
