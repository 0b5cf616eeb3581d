# The catalog is a browsing UI: it has no models of its own.
