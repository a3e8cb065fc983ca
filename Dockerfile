# Nimbus: one image for every role (nimbus server, nimbus worker, the CLI).
#
#   docker build --platform linux/amd64 -t nimbus:latest .
#
# The sandbox runs on linux/amd64 only (docs/architecture.md, "The sandbox"),
# so build worker images for that platform. Deployment on Kubernetes:
# deploy/kubernetes and docs/operations-kubernetes.md.

# Build: a static binary (no cgo), with paths of this machine trimmed.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/nimbus ./cmd/nimbus

# Run: Debian 12 with the Python that functions run on. python3-pip-whl
# is the pip wheel that dependency builds (requirements.txt) run on the
# servers; ca-certificates lets them fetch from an HTTPS package index.
FROM debian:12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-pip-whl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 nimbus \
    && useradd --system --uid 10001 --gid nimbus --home-dir /var/lib/nimbus --create-home nimbus
COPY --from=build /out/nimbus /usr/local/bin/nimbus
# The server runs as this unprivileged user. A worker must run as root
# (its pod sets runAsUser: 0 and privileged): it builds each sandbox from
# Linux namespaces, mounts and cgroups, then drops each function to an
# unprivileged uid of its own (docs/operations-kubernetes.md says why).
USER 10001:10001
WORKDIR /var/lib/nimbus
# 8080: the API (server); 7000: the internal port, Raft and RPC (server);
# 7001: the worker's RPC port.
EXPOSE 8080 7000 7001
ENTRYPOINT ["nimbus"]
CMD ["--help"]
