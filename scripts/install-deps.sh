#!/usr/bin/env bash
# Installs the Debian packages emcomm builds and tests with, if any is missing.
# Needs root (or sudo); runs apt-get non-interactively. Debian 12 (bookworm).
set -euo pipefail

packages=(
  build-essential pkg-config cmake   # the opus crate builds or links libopus
  libopus-dev                        # system libopus, found through pkg-config
  libasound2-dev                     # cpal talks to ALSA
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad  # third-party RTP and SRTP peer
  sox socat                          # test signals, pseudo-terminals
  multimon-ng                        # a reference DTMF decoder for the tests
  espeak-ng                          # text-to-speech for alerts without recorded audio
  iproute2 python3-minimal           # test hosts in network namespaces, and their probes
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install the Rust toolchain (rustup) first" >&2
  exit 1
fi
