// Package jobs is livetape's durable work queue and its recording callbacks.
//
// The queue is asynq (github.com/hibiken/asynq) on Redis. With no Redis
// address configured, an embedded in-process Redis (miniredis) stands in so
// that "livetape serve" needs nothing installed; its state is lost on restart,
// which is why everything that must survive a restart (callback events, and
// the recorder's spool for uploads) lives on disk and is enqueued again on
// start (see [Queue.ResumePending]).
//
// Tasks are idempotent: their ids are derived from what they work on (a file
// id, an event id), so enqueueing the same work twice while it is queued, or
// re-enqueueing everything at start, does not duplicate it.
//
// Callbacks tell the customer's backend about pushes and recordings. Their
// JSON body keeps the field names of the Tencent Cloud LVB recording callback
// (see [Event]); each POST is signed twice: the seed's sign = MD5(key + t) in
// the body, and an HMAC-SHA256 of the whole body in the X-Livetape-Signature
// header, which [VerifyCallback] checks for receivers.
package jobs
