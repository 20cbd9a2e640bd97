"""Dataparsers of the hfavatar plugin (kept import-light: nerfstudio loads entry points on every ``ns-*`` call)."""
