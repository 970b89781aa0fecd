# livetape: one image for every role (serve, worker).
#
#   docker build -t livetape .
#   docker run -p 1935:1935 -p 8080:8080 livetape serve
#
# Build stage: Go plus FFmpeg's development libraries (the transcoder links them
# through cgo; every other package builds with CGO_ENABLED=0).
FROM golang:1.26-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      pkg-config libavcodec-dev libavformat-dev libavutil-dev libavfilter-dev \
      libswscale-dev libswresample-dev libavdevice-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY go.mod go.sum ./
COPY third_party ./third_party
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/livetape ./cmd/livetape

# Runtime stage: Debian bookworm with FFmpeg's shared libraries only.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libavcodec59 libavformat59 libavutil57 libavfilter8 \
      libswscale6 libswresample4 libavdevice59 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/livetape --create-home livetape
COPY --from=build /out/livetape /usr/local/bin/livetape
USER livetape
WORKDIR /var/lib/livetape
ENV LIVETAPE_DATA_DIR=/var/lib/livetape/data
# Transcoder threads each get a glibc arena otherwise: RSS grows in steps over many jobs.
ENV MALLOC_ARENA_MAX=2
VOLUME /var/lib/livetape/data
EXPOSE 1935 8080
ENTRYPOINT ["livetape"]
CMD ["serve"]
