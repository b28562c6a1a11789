#!/usr/bin/env bash
# Install Debian packages that are missing. Arguments: package[:command-it-provides].
# Uses sudo when not root. Does nothing when every command is already there.
set -euo pipefail
missing=()
for spec in "$@"; do
  package=${spec%%:*}
  command=${spec#*:}
  if [ "$command" = "$spec" ]; then
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
  else
    command -v "$command" >/dev/null 2>&1 || missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "Installing Debian packages: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
