# syntax=docker/dockerfile:1
# esmd: a small image running esmd as a non-root user.
#   docker build -t esmd .
#   docker run -v $PWD/esmd.yaml:/etc/esmd/esmd.yaml:ro esmd

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/esmd ./cmd/esmd \
 && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/esmd /usr/local/bin/esmd
# Checkpoints live in a volume owned by the non-root user (65532).
COPY --from=build --chown=65532:65532 /out/state /var/lib/esmd
VOLUME ["/var/lib/esmd"]
WORKDIR /var/lib/esmd
USER 65532:65532
# /metrics, /healthz, /readyz and /mappings; set server.listen to 0.0.0.0:9400
# (with server.authToken) to reach them from outside the container.
EXPOSE 9400
ENTRYPOINT ["/usr/local/bin/esmd"]
CMD ["run", "-c", "/etc/esmd/esmd.yaml"]
