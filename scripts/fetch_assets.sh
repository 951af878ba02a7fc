#!/usr/bin/env bash
# Fetch the console's third-party browser assets from the npm registry into
# geodispatch/api/static/vendor/ (gitignored; never committed). Idempotent (each package is
# fetched again only when its pinned version changes); run at setup time, because control rooms
# and the app itself have no CDN access at run time.
#   leaflet          the dispatcher map, the crew app, the heatmaps
#   swagger-ui-dist  /docs        (FastAPI's Swagger UI page, pointed at these local files)
#   redoc            /redoc
#   protomaps-leaflet  the offline vector base map with street names (static/basemap.js)
#   leaflet.markercluster  crews clustered on the dispatcher map (static/mapcrews.js)
set -euo pipefail
cd "$(dirname "$0")/.."
VENDOR=geodispatch/api/static/vendor
LEAFLET_VERSION=${LEAFLET_VERSION:-1.9.4}
SWAGGER_UI_VERSION=${SWAGGER_UI_VERSION:-5.35.0}
REDOC_VERSION=${REDOC_VERSION:-2.5.4}
PROTOMAPS_LEAFLET_VERSION=${PROTOMAPS_LEAFLET_VERSION:-5.1.0}
MARKERCLUSTER_VERSION=${MARKERCLUSTER_VERSION:-1.5.3}

# fetch NPM_NAME VERSION DEST_DIR FILE... : copy FILEs (paths inside the package) into DEST_DIR
fetch() {
  local name=$1 version=$2 dest=$VENDOR/$3; shift 3
  if [ "$(cat "$dest/VERSION" 2>/dev/null)" = "$version" ]; then
    local complete=1
    for f in "$@"; do [ -e "$dest/$(basename "$f")" ] || complete=0; done
    [ "$complete" = 1 ] && return 0
  fi
  local tmp url
  tmp=$(mktemp -d)
  url="https://registry.npmjs.org/$name/-/${name##*/}-$version.tgz"
  echo "[assets] fetching $url"
  curl -fsSL --retry 3 -o "$tmp/pkg.tgz" "$url"
  tar -xzf "$tmp/pkg.tgz" -C "$tmp"
  rm -rf "$dest"
  mkdir -p "$dest"
  for f in "$@"; do cp -r "$tmp/package/$f" "$dest/"; done
  echo "$version" > "$dest/VERSION"
  rm -rf "$tmp"
  echo "[assets] $name $version in $dest"
}

fetch leaflet "$LEAFLET_VERSION" leaflet dist/leaflet.js dist/leaflet.css dist/images LICENSE
fetch swagger-ui-dist "$SWAGGER_UI_VERSION" swagger-ui \
  swagger-ui-bundle.js swagger-ui.css favicon-32x32.png oauth2-redirect.html LICENSE
fetch redoc "$REDOC_VERSION" redoc bundles/redoc.standalone.js LICENSE
fetch protomaps-leaflet "$PROTOMAPS_LEAFLET_VERSION" protomaps-leaflet \
  dist/protomaps-leaflet.js LICENSE
fetch leaflet.markercluster "$MARKERCLUSTER_VERSION" leaflet.markercluster \
  dist/leaflet.markercluster.js dist/MarkerCluster.css dist/MarkerCluster.Default.css MIT-LICENCE.txt
# Redoc's sidebar footer loads the Redocly logo from its CDN (no option turns it off); point it at
# an empty inline SVG so /redoc makes no outside request.
REDOC_JS=$VENDOR/redoc/redoc.standalone.js
if grep -q 'https://cdn.redoc.ly/redoc/logo-mini.svg' "$REDOC_JS"; then
  sed -i 's#https://cdn.redoc.ly/redoc/logo-mini.svg#data:image/svg+xml,%3Csvg xmlns=%27http://www.w3.org/2000/svg%27/%3E#g' "$REDOC_JS"
fi
