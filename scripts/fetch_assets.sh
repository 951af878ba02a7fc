#!/usr/bin/env bash
# Fetch the dispatcher map's third-party browser assets (Leaflet) from the npm registry into
# geodispatch/api/static/vendor/ (gitignored; never committed). Idempotent; run at setup time,
# because control rooms and the app itself have no CDN access at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
LEAFLET_VERSION=${LEAFLET_VERSION:-1.9.4}
DEST=geodispatch/api/static/vendor/leaflet
if [ -f "$DEST/leaflet.js" ] && [ "$(cat "$DEST/VERSION" 2>/dev/null)" = "$LEAFLET_VERSION" ]; then
  exit 0
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
URL="https://registry.npmjs.org/leaflet/-/leaflet-$LEAFLET_VERSION.tgz"
echo "[assets] fetching $URL"
curl -fsSL --retry 3 -o "$TMP/leaflet.tgz" "$URL"
tar -xzf "$TMP/leaflet.tgz" -C "$TMP"
rm -rf "$DEST"
mkdir -p "$DEST"
cp "$TMP/package/dist/leaflet.js" "$TMP/package/dist/leaflet.css" "$TMP/package/LICENSE" "$DEST/"
cp -r "$TMP/package/dist/images" "$DEST/images"
echo "$LEAFLET_VERSION" > "$DEST/VERSION"
echo "[assets] Leaflet $LEAFLET_VERSION in $DEST"
