# One image with the binaries of auditstream: ingest-api, writer,
# dlq-replayer and the operator tool auditctl. The image has no fixed entrypoint: the orchestrator picks the
# command (docker-compose.yml `command:`, Kubernetes `command:`), e.g.
#
#   docker build -t auditstream:latest .
#   docker run --rm -p 8080:8080 -e KAFKA_BROKERS=... -e DATABASE_URL=... auditstream:latest ingest-api
#   docker run --rm auditstream:latest dlq-replayer list --help
#
# The runtime stage is distroless: no shell, no curl. Health is served over
# HTTP by the binaries themselves (/health/live, /health/ready); probe it from
# the orchestrator, not from inside the container.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# The toolchain of the image is used as is: go.mod's `go` line must not
# trigger a toolchain download during the build.
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
COPY go.mod go.sum ./
RUN go mod download
COPY cmd/ cmd/
COPY internal/ internal/
# Static binaries: no libc needed at run time, so the runtime image can be
# distroless "static". -trimpath and -s -w keep paths and symbols out.
RUN go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/ingest-api ./cmd/writer ./cmd/dlq-replayer ./cmd/auditctl
# The directory compose mounts its integrity-keys volume on: a new named
# volume takes its owner from the image, so auditctl (running as nonroot)
# can write the keys there on first start.
RUN mkdir -p /dirs/run/auditstream/integrity

# distroless static: CA certificates, tzdata and /etc/passwd with the
# "nonroot" user (65532); nothing else.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ingest-api /out/writer /out/dlq-replayer /out/auditctl /usr/local/bin/
COPY --from=build --chown=65532:65532 /dirs/run/ /run/
USER 65532:65532
# ingest-api HTTP API; writer and dlq-replayer metrics and health.
EXPOSE 8080 9090 9091
ENTRYPOINT []
CMD ["ingest-api"]
