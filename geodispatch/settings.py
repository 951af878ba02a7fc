"""All configuration in one place: a pydantic-settings class read from ``GEODISPATCH_*`` variables.

Every field can be overridden from the environment (``GEODISPATCH_DATABASE_URL=...``) or a ``.env``
file in the working directory. Nothing reads the environment anywhere else; code asks
:func:`get_settings` (cached) or receives a ``Settings`` instance from the app factory.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Runtime settings; the README's configuration table documents each one."""

    model_config = SettingsConfigDict(env_prefix="GEODISPATCH_", env_file=".env", extra="ignore")

    # --- storage -----------------------------------------------------------------------------
    database_url: str = Field(
        "postgresql+psycopg://geodispatch_app:geodispatch_app@127.0.0.1:5432/geodispatch",
        description="SQLAlchemy URL the application uses (the restricted application role).",
    )
    admin_database_url: str = Field(
        "postgresql+psycopg://geodispatch:geodispatch@127.0.0.1:5432/geodispatch",
        description="URL of the schema owner: runs migrations and maintenance (never serves requests).",
    )
    test_database_suffix: str = Field(
        "_test", description="Tests use the same server with this suffix on the database name."
    )
    app_db_role: str = Field("geodispatch_app", description="Role the migrations grant DML to.")
    db_pool_size: int = Field(10, description="SQLAlchemy connection pool size per process.")
    db_pool_timeout_s: float = Field(
        5.0, gt=0, description="How long a request waits for a pooled database connection "
        "before it is answered 503 with Retry-After (the pool is exhausted).")

    # --- data & runtime files ----------------------------------------------------------------
    data_dir: Path = Field(
        PROJECT_ROOT.parent / "shared" / "data",
        description="Folder with OSM extracts, call records, traces and tracker vectors.",
    )
    var_dir: Path = Field(
        PROJECT_ROOT / "var",
        description="Runtime state: broker config, built graphs, log keys and tree heads, SMS log.",
    )

    standards_dir: Path = Field(
        PROJECT_ROOT.parent / "shared" / "standards",
        description="Folder of the official standards read at run time (NENA EIDO schema, APCO "
        "disposition codes); never copied into the repository.",
    )

    # --- MQTT --------------------------------------------------------------------------------
    mqtt_url: str = Field(
        "mqtt://geodispatch-server:geodispatch-server@127.0.0.1:18830",
        description="Broker URL with the server's own credentials.",
    )
    mqtt_broker_user: str = Field(
        "mosquitto", description="Account the project's Mosquitto drops to when started as root "
        "(empty: stay root, not recommended).")
    mqtt_tls_port: int | None = Field(
        None, description="Also listen for MQTT over TLS on this port (needs cert and key).")
    mqtt_tls_host: str = Field("0.0.0.0", description="Address of the TLS listener.")
    mqtt_tls_certfile: Path | None = Field(
        None, description="PEM certificate (chain) of the TLS listener.")
    mqtt_tls_keyfile: Path | None = Field(
        None, description="PEM private key of the TLS listener (readable by the broker user).")
    mqtt_client_id: str = Field("geodispatch-ingest", description="Client id prefix (persistent session).")
    mqtt_shared_group: str = Field("ingest", description="MQTT 5 shared-subscription group of ingest workers.")
    mqtt_max_payload: int = Field(65536, description="Largest accepted MQTT payload in bytes.")
    mqtt_session_expiry_s: int = Field(
        14 * 86400, description="How long the broker keeps an ingest worker's session while it is down."
    )

    # --- tracking ----------------------------------------------------------------------------
    h3_position_res: int = Field(10, description="H3 resolution stored with every position.")
    stale_after_s: float = Field(120.0, description="A unit whose last fix is older is stale.")
    max_fix_age_s: float = Field(7 * 86400.0, description="Reject fixes older than this.")
    max_future_s: float = Field(120.0, description="Reject fixes further in the future than this.")
    max_accuracy_m: float = Field(1000.0, description="Reject fixes with a worse reported accuracy.")
    max_speed_kmh: float = Field(300.0, description="Reject a fix implying a faster jump from the last.")
    max_reported_speed_kmh: float = Field(
        400.0, description="Plausibility bound: refuse a fix reporting a faster speed.")
    min_altitude_m: float = Field(
        -1000.0, description="Plausibility bound: refuse a fix reporting a lower altitude.")
    max_altitude_m: float = Field(
        20000.0, description="Plausibility bound: refuse a fix reporting a higher altitude.")
    max_heading_deg: float = Field(
        360.0, description="Plausibility bound: refuse a heading above this (below 0 = unknown).")
    max_battery_pct: float = Field(
        100.0, description="Plausibility bound: refuse a battery level above this percentage.")
    partition_months_ahead: int = Field(
        3, description="Monthly position partitions kept ready beyond the current month.")
    partition_job_interval_s: float = Field(
        3600.0, description="How often the partition job runs (in `ingest` and `serve`).")
    ingest_batch_size: int = Field(5000, description="Positions written per COPY batch.")
    ingest_flush_ms: int = Field(200, description="Longest wait before a partial batch is written.")
    http_max_body: int = Field(262144, description="Largest accepted HTTP ingest body in bytes.")

    # --- routing -----------------------------------------------------------------------------
    osm_file: Path | None = Field(None, description="OSM extract for the demo (default: Baltimore).")
    graph_path: Path | None = Field(None, description="Compiled road graph (.npz); default var/graph.npz.")
    speed_table_file: Path | None = Field(None, description="JSON {highway class: km/h} overriding defaults.")
    snap_max_m: float = Field(200.0, description="Points further from any road are flagged off-road.")
    walk_speed_kmh: float = Field(
        5.0, gt=0, description="Off-road legs (crew or incident beyond snap_max_m) at this speed.")
    rush_hour_factors: bool = Field(False, description="Apply the time-of-day speed factor table.")
    speed_factors_file: Path | None = Field(
        None, description="JSON time-of-day speed factor table (default: routing.speeds table)."
    )
    routing_timezone: str = Field(
        "Europe/Kyiv", description="Local time zone the time-of-day speed factors are written in."
    )

    # --- geocoding ---------------------------------------------------------------------------
    geocode_database: str | None = Field(
        None, description="Nominatim's database on the same server (default "
        "<database>_nominatim); `geocode import` builds it from the extract.")
    geocode_nominatim_style: str = Field(
        "full", description="Nominatim import style: `address` (addresses and streets only) or "
        "`full` (also landmarks a caller may name).")
    geocode_on_graph_import: bool = Field(
        True, description="`graph import PATH` also imports the extract's addresses.")
    geocode_street_cluster_m: float = Field(
        1500.0, description="Same-named ways closer than this are one street (Web Mercator "
        "metres: about 1.1 km at 40°, 0.9 km at 50°).")
    geocode_house_street_max_m: float = Field(
        1500.0, description="A house is tied to the nearest street of its addr:street name "
        "within this distance; farther, it gets a street of its own.")
    geocode_min_similarity: float = Field(
        0.45, description="Least trigram word similarity for a typed street name to match.")
    geocode_reverse_house_m: float = Field(
        40.0, description="Reverse geocoding names a house within this distance, else the "
        "nearest street.")
    geocode_reverse_max_m: float = Field(
        500.0, description="Reverse geocoding finds nothing farther than this from the point.")

    # --- zones -------------------------------------------------------------------------------
    h3_zone_res: int = Field(8, description="H3 resolution of zone cell sets.")
    h3_incident_res: int = Field(9, description="H3 resolution stored with every incident.")
    cross_border_factor: float = Field(
        0.7, description="An out-of-zone crew wins only if its ETA < factor x best in-zone ETA."
    )
    cross_border_min_gain_s: float = Field(60.0, description="...and saves at least this many seconds.")
    default_region: str = Field("KV", description="Region code for incidents outside every zone.")
    phone_region: str = Field(
        "UA", description="Country (ISO 3166 code) of caller numbers typed without +country code.")

    # --- dispatch ----------------------------------------------------------------------------
    arrival_radius_m: float = Field(75.0, description="GPS within this of the incident = on scene.")
    recommend_top_n: int = Field(5, description="Crews returned by a recommendation.")
    recommend_max_eta_s: float = Field(1800.0, description="Routing search bound in seconds.")
    classification_file: Path | None = Field(
        None, description="TOML call classification (categories, local disposition codes mapped "
        "onto APCO codes, SMS stages per category); default built in."
    )
    on_scene_alert_s: float = Field(3600.0, description="Supervisor alert: on scene longer than this.")
    not_moving_alert_s: float = Field(
        180.0, description="Supervisor alert: dispatched this long without moving or reporting en route."
    )
    alerts_max_age_s: float = Field(
        86400.0, description="Supervisor timers older than this (an imported or never-closed "
        "record, a crew silent for days) are left out of the alerts and counted in one "
        "'stale_records' alert instead.",
    )
    monitor_interval_s: float = Field(2.0, description="How often GPS arrival detection runs.")
    assignment_ack_timeout_s: float = Field(
        60.0, description="Supervisor alert and resend: an assignment the crew has not "
        "acknowledged this long after dispatch (or its last send).",
    )
    assignment_retry_s: float = Field(
        2.0, description="How often assignments not yet confirmed by the broker are published "
        "again (and the server's MQTT client is reconnected).",
    )

    # --- API & auth --------------------------------------------------------------------------
    serve_ingest: bool = Field(True, description="`serve` also runs an MQTT ingest worker in-process.")
    api_host: str = Field("127.0.0.1", description="Address uvicorn binds.")
    api_port: int = Field(8000, description="Port uvicorn binds.")
    jwt_secret: str = Field(
        "", description="HMAC secret for access tokens; empty = a random one kept in var/jwt.secret."
    )
    jwt_ttl_minutes: float = Field(
        720, gt=0, description="Access-token lifetime in minutes; the console renews its token "
        "(POST /api/auth/refresh) well before it runs out, so a session lasts the whole shift.")
    login_rate_per_minute: int = Field(10, description="Failed logins allowed per user+address a minute.")
    tile_url: str = Field(
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="Map tile URL template; empty = offline map (roads and zones from the database).",
    )
    tile_attribution: str = Field(
        "&copy; OpenStreetMap contributors", description="Attribution shown on every map."
    )
    tiles_path: Path | None = Field(
        None, description="Vector tiles (MBTiles) of the city's extract served under /tiles; "
        "default var/tiles.mbtiles, built by `geodispatch tiles build` and `graph import`.")
    vector_tiles: bool = Field(
        True, description="Draw the offline vector base map (street names) from `tiles_path` "
        "when it is built; false = the raster `tile_url` (online tiles) or our roads.")
    tiles_on_graph_import: bool = Field(
        True, description="`graph import PATH` also builds the vector tiles (needs tilemaker).")
    live_max_rate_hz: float = Field(
        4.0, description="Most WebSocket batches sent to one live client per second (coalesced)."
    )
    live_incident_poll_s: float = Field(
        0.5, description="How often the live stream polls the incident event log for changes."
    )

    # --- SMS ---------------------------------------------------------------------------------
    sms_backend: str = Field("log", description="'log' (append to a file) or 'http' (JSON POST).")
    sms_http_url: str = Field("", description="HTTP gateway endpoint for sms_backend=http.")
    sms_http_token: str = Field("", description="Bearer token for the HTTP gateway.")
    sms_max_attempts: int = Field(8, description="Delivery attempts before an SMS is marked failed.")
    sms_default_lang: str = Field("uk", description="Template language when the call has none.")

    # --- calls and caller location ------------------------------------------------------------
    calls_webhook_token: str = Field(
        "", description="Shared secret phone systems send (X-Phone-System-Token or Bearer) to the "
        "call webhook, AML and ARI endpoints; empty = only clients on this machine (loopback).")
    calls_answer_target_s: float = Field(
        15.0, description="Answering target of the supervisor's 'answered within' share (NENA 15 s).")
    calls_location_window_s: float = Field(
        300.0, description="An AML or PIDF-LO location is matched to the call from the same number "
        "that rang within this many seconds before or after it arrived.")
    calls_aml_max_age_s: float = Field(
        86400.0, description="AML whose fix time is older than this (or this far ahead) is refused.")
    calls_edge_pool_size: int = Field(
        3, ge=1, description="Database connections kept for the SIP edge's reports alone (twice "
        "this under load), apart from the shared pool.")
    calls_feed_poll_s: float = Field(
        0.2, gt=0, description="How often the live feed looks for changed calls to push to the "
        "call-takers' screens.")
    calls_default_line: str = Field("102", description="Line name of a call reported without one.")
    calls_nearby_radius_m: float = Field(
        300.0, description="The call-taker's duplicate check lists open incidents of the same "
        "category within this many metres of the caller's location.")
    calls_nearby_window_s: float = Field(
        1800.0, description="The duplicate check lists incidents received within this many "
        "seconds (those from the same number wherever they are).")
    calls_ari_url: str = Field(
        "", description="Asterisk ARI base URL (e.g. http://pbx:8088): the adapter subscribes to "
        "its WebSocket events; empty = no Asterisk adapter.")
    calls_ari_user: str = Field("geodispatch", description="ARI user (ari.conf).")
    calls_ari_password: str = Field("", description="ARI user's password (ari.conf).")
    calls_ari_app: str = Field(
        "geodispatch", description="Stasis application the dialplan hands calls to.")

    # --- the signed log ----------------------------------------------------------------------
    log_signing_key: Path | None = Field(
        None, description="Ed25519 private key of the centre's log (PEM, 0600, read by the "
        "sequencer only); default var/keys/log-signing.pem, created by `geodispatch log keygen`.")
    log_public_key: Path | None = Field(
        None, description="The log's public key (PEM), exported with every log; default "
        "var/keys/log-public.pem.")
    log_tree_head_file: Path | None = Field(
        None, description="Append-only, fsynced file of every signed tree head; default "
        "var/log/tree-heads-<database>.jsonl. Put it on another disk or host for it to count as a witness.")
    log_witnesses: list[str] = Field(
        default_factory=list, description="Further witnesses of the tree heads: `http(s)://...` "
        "(a `geodispatch log witness-serve`, the national centre) or `file:/path.jsonl`; "
        "JSON list in the environment.")
    record_pepper: Path | None = Field(
        None, description="Secret (32 random bytes, 0600) under which the record commits to "
        "personal values such as the caller's number without disclosing them in the log; "
        "default var/keys/record-pepper, created on first use. Losing it makes those "
        "commitments unverifiable, so back it up with the signing key.")
    log_seal_interval_s: float = Field(
        0.25, description="How often the sequencer seals queued events into a signed tree head.")
    log_seal_batch: int = Field(5000, description="Most events sealed in one tree head.")

    # --- federation (regional centres -> national centre) -----------------------------------
    federation_centre: str = Field(
        "", description="This centre's code in EIDO documents and the national registry "
        "(issuingElementIdentification); empty = default_region.")
    federation_poll_s: float = Field(
        0.05, description="How often the EIDO notifier looks for a newer signed tree head.")
    federation_max_expires_s: int = Field(
        86400, description="Longest subscription the EIDO notifier grants (seconds).")
    federation_subscriber_keys: list[Path] = Field(
        default_factory=list, description="Public keys (PEM) of the centres allowed to subscribe "
        "to this centre's EIDO feed and to dereference its incidents; JSON list in the "
        "environment. Empty = nobody.")
    federation_subscribe: bool = Field(
        False, description="`serve` runs the national subscriber: one live EIDO subscription "
        "per registered regional centre with a URL.")
    federation_reconnect_max_s: float = Field(
        5.0, description="Longest wait of the national subscriber between reconnections.")
    federation_auth_max_skew_s: float = Field(
        300.0, description="A subscriber's signed credential older or newer than this is refused.")

    # --- analytics ---------------------------------------------------------------------------
    analytics_timezone: str = Field(
        "Europe/Kyiv", description="IANA time zone of the hour-of-day and day-of-week analytics."
    )
    response_target_s: float = Field(
        600.0, description="Response-time target of the 'share within target' figures (seconds)."
    )

    @property
    def resolved_jwt_secret(self) -> str:
        """``jwt_secret``, else ``var/jwt.secret`` (created once, atomically, on first use).

        Read once per process: every request signs or checks a token with it.
        """
        if self.jwt_secret:
            return self.jwt_secret
        return _secret_file(self.var_dir / "jwt.secret")

    @property
    def resolved_federation_centre(self) -> str:
        return self.federation_centre or self.default_region

    @property
    def resolved_graph_path(self) -> Path:
        return self.graph_path or self.var_dir / "graph.npz"

    @property
    def resolved_tiles_path(self) -> Path:
        return self.tiles_path or self.var_dir / "tiles.mbtiles"

    @property
    def resolved_log_signing_key(self) -> Path:
        return self.log_signing_key or self.var_dir / "keys" / "log-signing.pem"

    @property
    def resolved_record_pepper(self) -> Path:
        return self.record_pepper or self.var_dir / "keys" / "record-pepper"

    @property
    def resolved_log_public_key(self) -> Path:
        return self.log_public_key or self.var_dir / "keys" / "log-public.pem"

    @property
    def resolved_log_tree_head_file(self) -> Path:
        """Default ``var/log/tree-heads-<database>.jsonl``: one file per database's log."""
        if self.log_tree_head_file:
            return self.log_tree_head_file
        name = make_url(self.database_url).database or "geodispatch"
        return self.var_dir / "log" / f"tree-heads-{name}.jsonl"

    @property
    def resolved_osm_file(self) -> Path:
        return self.osm_file or self.data_dir / "osm" / "baltimore_downtown_2015.osm.pbf"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()


_secrets: dict[Path, str] = {}


def _secret_file(path: Path) -> str:
    """The secret in ``path``, created with 0600 by whichever process comes first.

    The new secret is written to a private temporary file and hard-linked into place, which
    fails if another process got there first; then everyone reads the one that won.
    """
    if path in _secrets:
        return _secrets[path]
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jwt-")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"{path} is empty; delete it to have a new secret made")
    _secrets[path] = value
    return value
