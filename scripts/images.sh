#!/usr/bin/env bash
# Builds every railpulse image from deploy/docker/Dockerfile (the services' and `devstack`, the local
# stack's pieces for compose.yaml), on a Debian machine with no image registry: Docker (Debian's
# docker.io) is installed and started if it is not, the base OS image is `debootstrap
# --variant=minbase bookworm` imported once (its tarball kept under .local/images), and the stages
# share their layers (OS, JRE, locked dependencies), so a rebuild after a code change redoes only
# the thin per-service layers. Idempotent; `make images` and `.ci/run` call it.
#
#   scripts/images.sh                 # every target, tagged railpulse-<target>:local
#   scripts/images.sh ingest notifier # only these
#
# The local OS image trusts what this machine trusts (the certificates under
# /usr/local/share/ca-certificates, e.g. an egress proxy's), so apt and PyPI work inside builds;
# a release build uses the Dockerfile's default OS image and knows nothing of them.
# Timings of each step go to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${RAILPULSE_IMAGES_DIR:-$PWD/.local/images}
TAG=${RAILPULSE_IMAGE_TAG:-local}
OS_IMAGE=railpulse-os:bookworm
ALL_TARGETS=(ingest detector notifier archiver console devstack)
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
mkdir -p "$STATE"

step_started=$(date +%s.%N)
took() {  # took <what>: seconds since the previous step, on stderr
    local now; now=$(date +%s.%N)
    printf 'images: %-40s %6.1f s\n' "$1" "$(echo "$now - $step_started" | bc)" >&2
    step_started=$now
}

# -- 1. Debian packages ---------------------------------------------------------------------------
need=()
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
command -v bc >/dev/null 2>&1 || need+=(bc)
if [ ${#need[@]} -gt 0 ]; then
    echo "images: installing Debian packages: ${need[*]}" >&2
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
took "packages (${need[*]:-none missing})"

# -- 2. the Docker daemon -------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
    echo "images: starting dockerd (log: $STATE/dockerd.log)" >&2
    $SUDO bash -c "nohup setsid /usr/sbin/dockerd >'$STATE/dockerd.log' 2>&1 & echo \$! >'$STATE/dockerd.pid'"
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "images: dockerd did not start; see $STATE/dockerd.log" >&2; exit 1; }
fi
took "dockerd"

# -- 3. the base OS image (debootstrap), once -----------------------------------------------------
# The root file system is kept as a tarball beside the build logs, so a Docker whose images were
# removed gets the same base back in seconds; delete the tarball to debootstrap afresh.
BASE_TAR=$STATE/railpulse-os-bookworm.tar
if ! docker image inspect "$OS_IMAGE" >/dev/null 2>&1; then
    if [ ! -s "$BASE_TAR" ]; then
        rootfs=$(mktemp -d "$STATE/rootfs.XXXXXX")
        trap '$SUDO rm -rf "$rootfs" "$BASE_TAR.tmp"' EXIT
        $SUDO debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$STATE/debootstrap.log" 2>&1 \
            || { echo "images: debootstrap failed; see $STATE/debootstrap.log" >&2; exit 1; }
        if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
            $SUDO mkdir -p "$rootfs/usr/local/share/ca-certificates"
            $SUDO cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
        fi
        $SUDO rm -rf "$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
        $SUDO tar -C "$rootfs" -c . >"$BASE_TAR.tmp"
        mv "$BASE_TAR.tmp" "$BASE_TAR"
        $SUDO rm -rf "$rootfs"
        trap - EXIT
    fi
    docker import - "$OS_IMAGE" <"$BASE_TAR" >/dev/null
fi
took "base OS image ($OS_IMAGE)"

# -- 4. the images --------------------------------------------------------------------------------
# BuildKit, which Debian's docker client (/usr/bin/docker, 20.10) has built in: it builds only the
# stages a target needs, runs independent stages in parallel and shares the stages the targets
# have in common, so all targets are built at once. (A newer client elsewhere on the PATH wants
# the buildx plugin for BuildKit, which Debian does not package; without Debian's client the
# legacy builder builds them one by one.)
build() {  # build <target>: railpulse-<target>:$TAG, its log in $STATE/build-<target>.log
    "${BUILD[@]}" -f deploy/docker/Dockerfile --target "$1" \
        --build-arg OS_IMAGE="$OS_IMAGE" --build-arg KCL_PACKAGE=bundled \
        -t "railpulse-$1:$TAG" . >"$STATE/build-$1.log" 2>&1
}
if [ -x /usr/bin/docker ] && DOCKER_BUILDKIT=1 /usr/bin/docker build --help 2>/dev/null | grep -q -- --progress; then
    BUILD=(env DOCKER_BUILDKIT=1 /usr/bin/docker build --progress=plain)
    pids=()
    for target in "${TARGETS[@]}"; do build "$target" & pids+=($!); done
    failed=()
    for i in "${!TARGETS[@]}"; do wait "${pids[$i]}" || failed+=("${TARGETS[$i]}"); done
    for target in "${failed[@]}"; do tail -40 "$STATE/build-$target.log" >&2; done
    [ ${#failed[@]} -eq 0 ] || { echo "images: building ${failed[*]} failed (logs: $STATE)" >&2; exit 1; }
    took "images ${TARGETS[*]} (BuildKit, in parallel)"
else
    BUILD=(env DOCKER_BUILDKIT=0 docker build)
    for target in "${TARGETS[@]}"; do
        build "$target" || { tail -40 "$STATE/build-$target.log" >&2; echo "images: building $target failed" >&2; exit 1; }
        took "image railpulse-$target:$TAG"
    done
fi
