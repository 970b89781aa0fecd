module github.com/livetape/livetape

go 1.26

require github.com/Eyevinn/mp4ff v0.56.0 // indirect
