"""The browsing UI, one module per page family: home, catalog and model card, version page."""
