"""The client's own tests: no Django, no server. Every HTTP call goes to an
httpx.MockTransport; `client/` comes first on the path, installed or not."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
