package transcoder

// #include <malloc.h>
import "C"

// mallocInUse is the number of bytes the C heap (glibc malloc: every arena, and the
// chunks it mmaps for large blocks) has handed out and not had back. It is the
// balance of FFmpeg's allocations that the leak test compares across jobs: unlike the
// resident set it does not move with glibc's per-thread arenas.
func mallocInUse() int64 {
	mi := C.mallinfo2()
	return int64(mi.uordblks) + int64(mi.hblkhd)
}
