"""`cvfm-ros tiles`: pre-cache satellite tiles for a mission area and report what is covered.

    cvfm-ros tiles prefetch --path CACHE --url 'https://.../{z}/{x}/{y}.jpg' --zoom 18 19 \\
        --center 47.6 -122.3 --radius 500
    cvfm-ros tiles info --path CACHE --zoom 19 --route route.tum --datum 47.6 -122.3 30 --buffer 40

Areas: --bbox S W N E (degrees), --center LAT LON --radius M, or --route FILE --buffer M (TUM or
x,y CSV in `map` with --datum, or a lat,lon CSV). Exit status: 0 when every tile of the area is
present and valid, 1 when some are missing or corrupt (a GNSS-denied robot must know before it
leaves), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

_STATUS_COMPLETE, _STATUS_INCOMPLETE = 0, 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tiles", help="pre-cache satellite tiles and report their coverage",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="tiles_command", metavar="ACTION")
    prefetch = sub.add_parser("prefetch", help="fill the tile cache for an area from a tile server")
    info = sub.add_parser("info", help="report tiles present / missing / corrupt per zoom")
    for p in (prefetch, info):
        src = p.add_argument_group("tile source")
        src.add_argument("--config", help="YAML file holding a TileConfig (see --section)")
        src.add_argument("--section", default=None, help="top-level section of --config holding the TileConfig")
        src.add_argument("--path", help="XYZ tile directory (the cache), .mbtiles or GeoTIFF")
        src.add_argument("--tms", action="store_true", default=None,
                         help="the XYZ directory counts rows from the south")
        src.add_argument("--zoom", type=int, nargs="+", help="zoom level(s) of the area (default: the source's zooms)")
        area = p.add_argument_group("area (one of)")
        area.add_argument("--bbox", type=float, nargs=4, metavar=("LAT_S", "LON_W", "LAT_N", "LON_E"))
        area.add_argument("--center", type=float, nargs=2, metavar=("LAT", "LON"))
        area.add_argument("--radius", type=float, default=None, help="metres around --center")
        area.add_argument("--route", help="route file: TUM or x,y CSV in map (needs --datum), or lat,lon CSV")
        area.add_argument("--route-format", default="auto", choices=["auto", "tum", "xy", "latlon"])
        area.add_argument("--buffer", type=float, default=50.0, help="metres around --route (default 50)")
        area.add_argument("--datum", type=float, nargs="+", metavar="NUM",
                          help="LAT LON [ALT]: the datum of map, for --route in map metres")
        p.add_argument("--json", dest="json_out", help="also write the report as JSON to this file")
        p.add_argument("--list", type=int, default=10, help="list at most this many missing/corrupt tiles per zoom")
    prefetch.add_argument("--url", help="tile URL template with {z} {x} {y} (or {-y})")
    prefetch.add_argument("--offline", action="store_true", default=None,
                          help="make no request: only report what the cache lacks")
    prefetch.add_argument("--concurrency", type=int)
    prefetch.add_argument("--retries", type=int)
    prefetch.add_argument("--quota-mb", type=float)
    prefetch.add_argument("--timeout", type=float, nargs=2, metavar=("CONNECT_S", "READ_S"))
    prefetch.set_defaults(func=run_prefetch)
    info.set_defaults(func=run_info)
    parser.set_defaults(func=lambda args: (parser.print_help(), 2)[1])


def _config(args: argparse.Namespace, online: bool) -> Any:
    from cvfm_ros.config import from_dict, load_config
    from cvfm_ros.maps.tiles import TileConfig

    cfg = load_config(TileConfig, args.config, args.section) if args.config else TileConfig()
    overrides: dict[str, Any] = {}
    if args.path:
        overrides["path"] = args.path
    if args.tms:
        overrides["tms"] = True
    if online:
        for name, key in (("url", "url_template"), ("offline", "offline"), ("concurrency", "concurrency"),
                          ("retries", "retries"), ("quota_mb", "quota_mb")):
            value = getattr(args, name, None)
            if value is not None:
                overrides[key] = value
        if args.timeout:
            overrides["connect_timeout_s"], overrides["read_timeout_s"] = args.timeout
    else:
        # info never touches the network, whatever the config says.
        overrides["offline"] = True
        overrides["quota_mb"] = 0.0
    merged = {**dataclasses.asdict(cfg), **overrides}
    cfg = from_dict(TileConfig, merged, where="tiles options")
    if not cfg.path:
        raise ValueError("--path: give the tile source / cache (or a --config with tiles.path)")
    return cfg


def _datum(args: argparse.Namespace) -> Any:
    from cvfm_ros.maps.geodesy import Datum

    if not args.datum:
        return None
    if len(args.datum) not in (2, 3):
        raise ValueError(f"--datum: expected LAT LON [ALT], got {len(args.datum)} numbers")
    return Datum(*args.datum)


def _area_tiles(args: argparse.Namespace, zooms: list[int], tile_size: int) -> tuple[str, dict[int, list]]:
    from cvfm_ros.maps.tiles import load_route, tiles_along_route, tiles_around, tiles_in_bbox

    given = [name for name in ("bbox", "center", "route") if getattr(args, name)]
    if len(given) != 1:
        raise ValueError("area: give exactly one of --bbox, --center (with --radius) or --route")
    if args.bbox:
        s, w, n, e = args.bbox
        return f"bbox S {s} W {w} N {n} E {e}", {z: tiles_in_bbox(s, w, n, e, z, tile_size) for z in zooms}
    if args.center:
        if args.radius is None or args.radius < 0:
            raise ValueError("--radius: give a non-negative radius in metres with --center")
        lat, lon = args.center
        return (f"{args.radius:g} m around lat {lat} lon {lon}",
                {z: tiles_around(lat, lon, args.radius, z, tile_size) for z in zooms})
    lat, lon = load_route(args.route, args.route_format, _datum(args))
    return (f"{args.buffer:g} m around route {args.route} ({len(lat)} points)",
            {z: tiles_along_route(lat, lon, args.buffer, z, tile_size) for z in zooms})


def _zooms(args: argparse.Namespace, cfg: Any, store: Any) -> list[int]:
    if args.zoom:
        bad = [z for z in args.zoom if not 0 <= z <= 30]
        if bad:
            raise ValueError(f"--zoom: expected zooms in [0, 30], got {bad}")
        return sorted(set(args.zoom))
    if cfg.zoom is not None:
        return [cfg.zoom]
    zooms = store.source.zooms()
    if not zooms:
        raise ValueError("--zoom: the source has no tiles yet; give the zoom level(s) to cover")
    return zooms


def _print_check(check: Any, listed: int) -> None:
    for z, entry in check.summary().items():
        print(f"  zoom {z}: {entry['tiles']} tiles, {entry['present']} present, {entry['missing']} missing, "
              f"{entry['corrupt']} corrupt ({entry['coverage']:.1%} covered)")
        for tile in check.missing.get(int(z), [])[:listed]:
            print(f"    missing {tile}")
        for tile, reason in check.corrupt.get(int(z), [])[:listed]:
            print(f"    corrupt {tile}: {reason}")


def _write_json(path: str | None, payload: dict[str, Any]) -> None:
    if path:
        from cvfm_ros.config import atomic_write_text

        atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def _check_payload(check: Any, listed: int) -> dict[str, Any]:
    return {
        "complete": check.complete,
        "zooms": check.summary(),
        "missing": {str(z): [str(t) for t in ts[:listed]] for z, ts in check.missing.items()},
        "corrupt": {str(z): [{"tile": str(t), "reason": r} for t, r in ts[:listed]] for z, ts in check.corrupt.items()},
    }


def run_info(args: argparse.Namespace) -> int:
    from cvfm_ros.maps.geodesy import Datum
    from cvfm_ros.maps.tiles import TileStore, XYZDirectory

    cfg = _config(args, online=False)
    # The datum only matters for patches; coverage queries are in lat/lon.
    with TileStore(cfg, _datum(args) or Datum(0.0, 0.0)) as store:
        print(f"tile source: {store.source.description}")
        has_area = any(getattr(args, name) for name in ("bbox", "center", "route"))
        if not has_area:
            return _info_summary(args, store)
        zooms = _zooms(args, cfg, store)
        label, per_zoom = _area_tiles(args, zooms, cfg.tile_size)
        print(f"area: {label}")
        check = store.check(t for z in zooms for t in per_zoom[z])
        _print_check(check, args.list)
        temps = store.source.temp_files() if isinstance(store.source, XYZDirectory) else []
        if temps:
            print(f"  {len(temps)} leftover temporary file(s) of interrupted writes (never read as tiles)")
        payload = {"source": store.source.description, "area": label, **_check_payload(check, args.list),
                   "temp_files": len(temps)}
        _write_json(args.json_out, payload)
        if not check.complete:
            print("INCOMPLETE: the localizer will report NoCoverage where tiles are missing or corrupt")
            return _STATUS_INCOMPLETE
        print("complete: every tile of the area is present and valid")
        return _STATUS_COMPLETE


def _info_summary(args: argparse.Namespace, store: Any) -> int:
    from cvfm_ros.maps.tiles import MBTilesSource, XYZDirectory

    source = store.source
    zooms = sorted(set(args.zoom)) if args.zoom else source.zooms()
    payload: dict[str, Any] = {"source": source.description, "zooms": {}}
    if isinstance(source, (XYZDirectory, MBTilesSource)):
        for z in zooms:
            tiles = ([t for t, _ in source.iter_files(z)] if isinstance(source, XYZDirectory)
                     else list(source.iter_tiles(z)))
            check = store.check(tiles)
            entry = {"tiles": len(tiles), "valid": check.present[z], "corrupt": len(check.corrupt.get(z, []))}
            if tiles:
                xs, ys = [t.x for t in tiles], [t.y for t in tiles]
                entry["x_range"], entry["y_range"] = [min(xs), max(xs)], [min(ys), max(ys)]
            payload["zooms"][str(z)] = entry
            print(f"  zoom {z}: {entry['tiles']} tiles ({entry['valid']} valid, {entry['corrupt']} corrupt)"
                  + (f", x {entry['x_range']}, y {entry['y_range']}" if tiles else ""))
            for tile, reason in check.corrupt.get(z, [])[:args.list]:
                print(f"    corrupt {tile}: {reason}")
        if isinstance(source, XYZDirectory):
            payload["temp_files"] = len(source.temp_files())
    else:
        payload["zooms"] = {str(z): "rendered on demand" for z in zooms}
        print(f"  zooms {zooms[0]}-{zooms[-1]} rendered on demand from the orthophoto")
    _write_json(args.json_out, payload)
    corrupt = sum(v.get("corrupt", 0) for v in payload["zooms"].values() if isinstance(v, dict))
    return _STATUS_INCOMPLETE if corrupt else _STATUS_COMPLETE


def run_prefetch(args: argparse.Namespace) -> int:
    from cvfm_ros.maps.geodesy import Datum
    from cvfm_ros.maps.tiles import TileStore

    cfg = _config(args, online=True)
    if cfg.resolved_kind != "xyz":
        raise ValueError(f"--path: prefetch fills an XYZ directory, {cfg.path!r} is a {cfg.resolved_kind} source")
    if not cfg.url_template and not cfg.offline:
        raise ValueError("--url: give the tile URL template (or --offline to only report what is missing)")
    with TileStore(cfg, _datum(args) or Datum(0.0, 0.0)) as store:
        zooms = _zooms(args, cfg, store)
        label, per_zoom = _area_tiles(args, zooms, cfg.tile_size)
        tiles = [t for z in zooms for t in per_zoom[z]]
        print(f"cache: {store.source.description}\narea: {label}: {len(tiles)} tiles at zoom(s) {zooms}")
        payload: dict[str, Any] = {"area": label, "tiles": len(tiles)}
        if store.fetcher is not None:
            last = [0]

            def progress(done: int, total: int) -> None:
                # A line per 10 %: visible progress without flooding logs.
                if total and (done == total or done * 10 // total > last[0]):
                    last[0] = done * 10 // total
                    print(f"  {done}/{total} tiles", file=sys.stderr)

            report = store.prefetch(tiles, progress)
            summary = report.summary()
            for z, entry in summary["zooms"].items():
                print(f"  zoom {z}: " + ", ".join(f"{k} {v}" for k, v in entry.items()))
            evicted = f", {report.evicted} tile(s) evicted by the quota" if report.evicted else ""
            print(f"  {summary['requests']} request(s), {summary['bytes_fetched'] / 2**20:.1f} MiB in "
                  f"{summary['elapsed_s']:.1f} s{evicted}")
            for kind, results in report.failures.items():
                for result in results[:args.list]:
                    print(f"    {kind} {result.tile}: {result.reason}")
            payload["prefetch"] = summary
            if report.evicted:
                print("WARNING: the disk quota is smaller than the area; evicted tiles are missing again")
        else:
            print("  offline: no request made")
        check = store.check(tiles)
        print("coverage after prefetch:" if store.fetcher is not None else "coverage:")
        _print_check(check, args.list)
        payload.update(_check_payload(check, args.list))
        _write_json(args.json_out, payload)
        if not check.complete:
            print("INCOMPLETE: the localizer will report NoCoverage where tiles are missing or corrupt")
            return _STATUS_INCOMPLETE
        print("complete: every tile of the area is present and valid")
        return _STATUS_COMPLETE
