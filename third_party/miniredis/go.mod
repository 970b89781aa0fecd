module github.com/alicebob/miniredis/v2

require (
	github.com/alicebob/gopher-json v0.0.0-20200520072559-a9ecdc9d1d3a
	github.com/yuin/gopher-lua v1.1.1
)

go 1.17
