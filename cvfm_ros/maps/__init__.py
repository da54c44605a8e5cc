"""Maps: geodesy and the satellite tile cache (above geometry and io, below the model).

`cvfm_ros.maps.geodesy` converts between `map` (ENU at a datum), WGS84 and Web Mercator;
`cvfm_ros.maps.tiles` reads north-up metric aerial patches from cached Web Mercator tiles.
Heavy imports (OpenCV, requests, sqlite) stay inside `tiles` so importing this package is cheap.
"""
from .geodesy import Datum

__all__ = ["Datum"]
