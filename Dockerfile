# livetape: one image for every role (serve, worker), with livetape-transcoder beside
# livetape (it runs each transcode and poster job, and is the only one to map FFmpeg).
#
#   docker build -t livetape .
#   docker run -p 1935:1935 -p 8080:8080 livetape serve
#
# Build stage: Go plus FFmpeg's development libraries (livetape-transcoder links them
# through cgo; livetape builds with CGO_ENABLED=0).
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
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/livetape ./cmd/livetape \
 && go build -trimpath -ldflags "-s -w" -o /out/livetape-transcoder ./cmd/livetape-transcoder

# Runtime stage: Debian bookworm with FFmpeg's shared libraries (for livetape-transcoder) only.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libavcodec59 libavformat59 libavutil57 libavfilter8 \
      libswscale6 libswresample4 libavdevice59 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/livetape --create-home livetape
COPY --from=build /out/livetape /out/livetape-transcoder /usr/local/bin/
USER livetape
WORKDIR /var/lib/livetape
ENV LIVETAPE_DATA_DIR=/var/lib/livetape/data
VOLUME /var/lib/livetape/data
EXPOSE 1935 8080
ENTRYPOINT ["livetape"]
CMD ["serve"]
