// Package mp4concat joins and cuts progressive MP4 recordings without re-encoding.
//
// Its inputs are MP4 files as the recorder writes them (packager/fmp4's Finalize: the
// moov before one mdat, at most one H.264 and one AAC track). Its output is a
// [Movie]: one fast-start MP4 (ftyp, moov, mdat) that exists only as a plan until it
// is read. The moov is built in memory from the inputs' sample tables; the media bytes
// are read from the inputs, by range, when the movie is read. So a movie can be
// written to a file ([Movie.WriteTo], streaming through one fixed buffer) or served
// over HTTP with Range support ([Movie.NewReader] with http.ServeContent) without a
// temporary file, from local files or from storage objects opened by range.
//
// [Concat] joins whole recordings one after the other; [Clip] takes the part of a run
// of recordings that covers a wall-clock window, cut at keyframes.
//
// The samples are copied byte for byte: the video and audio of the output are the
// inputs' own. That needs the same codec configuration in every input (H.264 SPS and
// PPS, AAC AudioSpecificConfig, timescales); when they differ, Concat and Clip return
// [ErrConfigMismatch] and the caller transcodes the inputs to a common template first.
//
// # Timeline
//
// The output's timestamps start at 0 and increase without a break. The time between
// two inputs is either closed up ([CloseGaps]: the next input starts where the
// previous one ends) or kept ([KeepGaps]: the next input starts as long after the
// first one as it did on the wall clock, from [Input.Start]). A kept gap is the last
// sample before it lasting until the gap ends (the picture holds its last frame, the
// sound its last AAC frame), the way packager/fmp4 records a hole in a push. A
// progressive MP4 cannot say "nothing here" otherwise except with edit lists of
// several entries, which browsers and many players ignore; a long sample plays
// everywhere.
//
// Memory grows with the number of samples (about 4 bytes a sample for the sizes,
// plus the moov being built), never with the number of media bytes.
package mp4concat
