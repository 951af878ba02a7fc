-- geodispatch base map: what of the city's OSM extract goes into which vector-tile layer.
-- Read by tilemaker 2.x (object-style API: way:Find, way:Layer ...) with config.json beside it.
-- Layers and attributes (what geodispatch/api/static/basemap.js draws):
--   roads     class (motorway trunk primary secondary tertiary minor service path rail), name, ref
--   water     water areas;   waterway  class (river stream canal ditch drain), name
--   landuse   class (park wood grass residential commercial industrial cemetery)
--   buildings footprints at z14;   places  class (city town village suburb neighbourhood ...), name

node_keys = { "place" }

local PLACE_MINZOOM = { city = 10, town = 10, village = 11, suburb = 12, quarter = 13,
                        neighbourhood = 13, hamlet = 13, locality = 14, square = 14 }

function node_function(node)
	local place = node:Find("place")
	local mz = PLACE_MINZOOM[place]
	if mz and node:Find("name") ~= "" then
		node:Layer("places", false)
		node:MinZoom(mz)
		node:Attribute("class", place)
		node:Attribute("name", node:Find("name"))
	end
end

-- highway=* -> roads class and the first zoom it shows at
local ROAD_CLASS = {
	motorway = "motorway", motorway_link = "motorway", trunk = "trunk", trunk_link = "trunk",
	primary = "primary", primary_link = "primary", secondary = "secondary",
	secondary_link = "secondary", tertiary = "tertiary", tertiary_link = "tertiary",
	residential = "minor", unclassified = "minor", living_street = "minor", road = "minor",
	service = "service", track = "service", pedestrian = "path", footway = "path",
	cycleway = "path", path = "path", steps = "path", bridleway = "path",
}
local ROAD_MINZOOM = { motorway = 10, trunk = 10, primary = 10, secondary = 11, tertiary = 12,
                       minor = 13, service = 14, path = 14, rail = 12 }
local LANDUSE = {
	park = "park", garden = "park", playground = "park", pitch = "park", recreation_ground = "park",
	wood = "wood", forest = "wood", scrub = "wood", grass = "grass", meadow = "grass",
	village_green = "grass", residential = "residential", commercial = "commercial",
	retail = "commercial", industrial = "industrial", railway = "industrial",
	cemetery = "cemetery", grave_yard = "cemetery",
}
local WATERWAY = { river = 11, canal = 11, stream = 13, ditch = 14, drain = 14 }

function way_function(way)
	local highway = way:Find("highway")
	local railway = way:Find("railway")
	local waterway = way:Find("waterway")
	local natural = way:Find("natural")
	local closed = way:IsClosed()

	local class = ROAD_CLASS[highway]
	if class == nil and (railway == "rail" or railway == "light_rail" or railway == "tram") then
		class = "rail"
	end
	if class and way:Find("area") ~= "yes" then
		way:Layer("roads", false)
		way:MinZoom(ROAD_MINZOOM[class])
		way:Attribute("class", class)
		local name = way:Find("name")
		if name ~= "" then way:Attribute("name", name) end
		local ref = way:Find("ref")
		if ref ~= "" then way:Attribute("ref", ref) end
		return
	end

	if WATERWAY[waterway] then
		way:Layer("waterway", false)
		way:MinZoom(WATERWAY[waterway])
		way:Attribute("class", waterway)
		local name = way:Find("name")
		if name ~= "" then way:Attribute("name", name) end
		return
	end
	if not closed then return end

	if natural == "water" or waterway == "riverbank" or way:Find("landuse") == "reservoir"
			or way:Find("landuse") == "basin" then
		way:Layer("water", true)
		return
	end
	if way:Find("building") ~= "" then
		way:Layer("buildings", true)
		return
	end
	local lu = LANDUSE[way:Find("leisure")] or LANDUSE[way:Find("landuse")]
			or LANDUSE[way:Find("natural")] or LANDUSE[way:Find("amenity")]
	if lu then
		way:Layer("landuse", true)
		way:Attribute("class", lu)
	end
end
