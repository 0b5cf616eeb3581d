#!/usr/bin/env python
"""The checkout's manage.py: the same main() as the installed `modelvault-admin`."""

from config.manage import main

if __name__ == "__main__":
    main()
