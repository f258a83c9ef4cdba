"""The library behind the four tutorial scripts (docs/architecture.md has the map)."""
import os

ASSETS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
