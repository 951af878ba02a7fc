"""The offline base map: vector tiles of the city's own OpenStreetMap extract.

``build`` turns the extract into an MBTiles file with tilemaker (config and Lua profile in
``tilemaker/``), ``mbtiles`` reads tiles and metadata from it, ``views`` serves them under
``/tiles`` and ``cli`` is ``geodispatch tiles build|info``. The browser side is
``geodispatch/api/static/basemap.js`` (protomaps-leaflet).
"""
